"""Lineage renderings: the text tree, JSON, Graphviz DOT and Mermaid show the same subgraph."""

from __future__ import annotations

import json
import re

import pytest

from featureledger.lineage import LineageGraph, render, render_impact
from featureledger.lineage.render import MAX_TEXT_LEVELS

from .conftest import USERS_SRC, us


def test_text_tree_from_the_served_model_back_to_the_raw_source(fraud: LineageGraph) -> None:
    text = render(fraud, "deployment/fraud", direction="upstream")
    lines = text.splitlines()
    assert lines[0] == "deployment/fraud  (serves model/fraud_xgb/1)"
    # both models it ever served, in natural order
    assert lines[1].startswith("├── model/fraud_xgb/1  [deployed")
    assert any(line.startswith("└── model/fraud_xgb/2  [deployed") for line in lines)
    assert any("training_dataset/fraud@v1/1  [trained_on" in line for line in lines)
    assert any(USERS_SRC in line and "[read" in line for line in lines)
    pinned = [line for line in lines if f"{us(2)}  [pinned" in line]
    assert len(pinned) == 1 and "(upsert)" in pinned[0]
    # every reached node appears; repeats are marked, not expanded twice
    for node in fraud.ancestors("deployment/fraud"):
        assert node in text
    assert text.count(f"{us(1)}  [") >= 1
    assert "(*)" in text and "shown at another place" in text


def test_text_tree_respects_depth(fraud: LineageGraph) -> None:
    text = render(fraud, us(1), direction="downstream", depth=1)
    body = [line for line in text.splitlines()[1:] if not line.startswith("(")]
    assert {re.split(r"\s+", line.lstrip("├└─ "))[0] for line in body} == set(
        fraud.descendants(us(1), depth=1)
    )
    assert text.rstrip().endswith("(depth limited to 1)")


def test_text_tree_stops_nesting_on_long_chains() -> None:
    g = LineageGraph()
    for i in range(200):
        g.add_edge(f"feature_group/g@v1#{i}", f"feature_group/g@v1#{i + 1}", "parent")
    text = render(g, "feature_group/g@v1#200")
    assert len(text.splitlines()) == MAX_TEXT_LEVELS + 2
    assert "(...)" in text and "--format json" in text
    assert max(len(line) for line in text.splitlines()) < 4 * MAX_TEXT_LEVELS + 100


def test_json_has_every_node_and_edge(fraud: LineageGraph) -> None:
    doc = json.loads(render(fraud, us(1), direction="downstream", format="json"))
    result = fraud.lineage(us(1), "downstream")
    assert doc["root"] == us(1) and doc["direction"] == "downstream" and doc["depth"] is None
    assert {n["id"]: n["distance"] for n in doc["nodes"]} == result.nodes
    assert len(doc["edges"]) == len(result.edges)
    by_id = {n["id"]: n for n in doc["nodes"]}
    assert by_id[us(1)]["kind"] == "data_version" and by_id[us(1)]["distance"] == 0
    assert by_id["deployment/shadow"]["attrs"]["model"] == "model/fraud_xgb/3"
    edge = next(e for e in doc["edges"] if e["target"] == "training_dataset/fraud@v1/1")
    assert edge["kind"] in ("pinned", "wrote") and "run" in edge


def test_dot_declares_each_node_once_and_each_edge(fraud: LineageGraph) -> None:
    dot = render(fraud, "training_dataset/fraud@v1/3", format="dot", depth=2)
    result = fraud.lineage("training_dataset/fraud@v1/3", "upstream", 2)
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert len(re.findall(r"^  \".*\" -> \".*\" \[label=", dot, flags=re.M)) == len(result.edges)
    declared = re.findall(r"^  (\"[^\"]*\") \[label=", dot, flags=re.M)
    assert len(declared) == len(set(declared)) == len(result.nodes)
    assert "shape=note" in dot and "penwidth" in dot  # training set shape, root highlighted


def test_dot_escapes_quotes() -> None:
    g = LineageGraph()
    g.add_edge('/data/we"ird.csv', "feature_group/g@v1#1", "read")
    dot = render(g, "feature_group/g@v1#1", format="dot")
    assert '"/data/we\\"ird.csv"' in dot


def test_mermaid_flowchart(fraud: LineageGraph) -> None:
    text = render(fraud, us(1), direction="downstream", format="mermaid")
    result = fraud.lineage(us(1), "downstream")
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert len([line for line in lines if "-->|" in line]) == len(result.edges)
    assert "feature_group/user_stats@v1#35;1" in text  # '#' escaped inside labels
    labels = [line for line in lines if ":::" in line]
    assert len(labels) == len(result.nodes)
    assert not any(re.search(r"#\d+[^;\d]", line.replace("#35;", "")) for line in labels)
    assert "classDef data_version" in text and "style n0 stroke-width" in text


def test_unknown_format_is_refused(fraud: LineageGraph) -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        render(fraud, us(1), format="svg")  # type: ignore[arg-type]


def test_render_impact(fraud: LineageGraph) -> None:
    text = render_impact(fraud.impact(us(1)))
    assert text.startswith(f"{us(1)}: 10 dependent(s) affected if it is bad")
    assert "  training datasets (2):" in text
    assert "    deployment/fraud  <- serving an affected model now" in text
    doc = json.loads(render_impact(fraud.impact(us(3)), format="json"))
    assert doc["serving"] == [] and doc["counts"]["model"] == 1
    assert "nothing downstream" in render_impact(fraud.impact("deployment/fraud"))
