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


# -- each format read back -------------------------------------------------------------------
def chain_graph(versions: int = 6) -> LineageGraph:
    """One group definition defining a chain of data versions, as the store records it."""
    g = LineageGraph()
    g.add_edge("s3://raw/users.parquet", "feature_group/g@v1#0", "read", run="r0")
    for i in range(versions):
        g.add_edge("feature_group/g@v1", f"feature_group/g@v1#{i}", "defines")
        if i:
            g.add_edge(
                f"feature_group/g@v1#{i - 1}", f"feature_group/g@v1#{i}", "parent", run=f"r{i}"
            )
    g.add_edge(f"feature_group/g@v1#{versions - 1}", "training_dataset/v@v1/1", "pinned", run="t")
    g.add_edge("feature_group/g@v1", "feature_view/v@v1", "selected")
    g.add_edge("feature_view/v@v1", "training_dataset/v@v1/1", "materialized", run="t")
    return g


def tree_links(text: str) -> list[str]:
    """``node  [evidence]`` of each tree line (what the line says), without the drawing."""
    return [
        re.sub(r"^[│├└─ ]+", "", line).split("]")[0] + "]"
        for line in text.splitlines()[1:]
        if "  [" in line
    ]


@pytest.mark.parametrize("root", ["training_dataset/v@v1/1", "feature_group/g@v1#5"])
def test_text_tree_never_repeats_a_link(root: str) -> None:
    g = chain_graph()
    text = render(g, root)
    links = tree_links(text)
    assert len(links) == len(set(links)), text
    assert links.count("feature_group/g@v1  [defines]") == 1
    # every node is still there, and the footnote says links were left out
    for node in g.ancestors(root):
        assert node in text
    assert "not repeated" in text
    assert_well_drawn(text)


def assert_well_drawn(text: str) -> None:
    """Each "├──" has a later sibling before its branch ends; each "└──" has none."""
    rows = [
        (len(line) - len(re.sub(r"^[│├└─ ]+", "", line)), line)
        for line in text.splitlines()[1:]
        if "── " in line
    ]
    for i, (indent, line) in enumerate(rows):
        after = next((d for d, _ in rows[i + 1 :] if d <= indent), None)
        if line[indent - 4] == "├":
            assert after == indent, text
        else:
            assert after is None or after < indent, text


def test_text_tree_of_the_fraud_fixture_never_repeats_a_link(fraud: LineageGraph) -> None:
    for root in ("deployment/fraud", "training_dataset/fraud@v1/3", us(1)):
        for direction in ("upstream", "downstream"):
            text = render(fraud, root, direction=direction)  # type: ignore[arg-type]
            links = tree_links(text)
            assert len(links) == len(set(links)), text
            assert_well_drawn(text)


_DOT_STRING = r'"((?:[^"\\]|\\.)*)"'


def parse_dot(text: str) -> tuple[set[str], set[tuple[str, str, str]]]:
    """A tiny reader for the DOT subset `render` writes: quoted node and edge statements."""
    unquote = lambda s: re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], s)  # noqa: E731
    assert text.startswith("digraph lineage {\n") and text.rstrip().endswith("}")
    nodes, edges = set(), set()
    for line in text.rstrip("\n").splitlines()[1:-1]:
        if m := re.fullmatch(rf"  {_DOT_STRING} -> {_DOT_STRING} \[label={_DOT_STRING}\];", line):
            edges.add((unquote(m[1]), unquote(m[2]), unquote(m[3])))
        elif m := re.fullmatch(rf"  {_DOT_STRING} \[label={_DOT_STRING}, (.*)\];", line):
            nodes.add(unquote(m[1]))
            assert unquote(m[2]).split("\n")[0] == unquote(m[1])
        else:
            assert re.fullmatch(r"  (rankdir|node|edge).*;", line), line
    return nodes, edges


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_dot_reads_back_to_the_same_subgraph(fraud: LineageGraph, direction: str) -> None:
    for root in ("deployment/fraud", us(1), "training_dataset/fraud@v1/2"):
        result = fraud.lineage(root, direction)  # type: ignore[arg-type]
        nodes, edges = parse_dot(render(fraud, root, direction=direction, format="dot"))  # type: ignore[arg-type]
        assert nodes == set(result.nodes)
        assert edges == {(e.source, e.target, e.kind) for e in result.edges}


def test_dot_round_trips_awkward_names() -> None:
    g = LineageGraph()
    g.add_edge('/data/we"ird\\name.csv', "feature_group/g@v1#1", "read")
    nodes, edges = parse_dot(render(g, "feature_group/g@v1#1", format="dot"))
    assert nodes == {'/data/we"ird\\name.csv', "feature_group/g@v1#1"}
    assert edges == {('/data/we"ird\\name.csv', "feature_group/g@v1#1", "read")}


def parse_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str, str]]]:
    """Node ids -> labels and the edges, from the flowchart subset `render` writes."""
    lines = text.rstrip("\n").splitlines()
    assert lines[0] == "flowchart LR"
    unescape = lambda s: (  # noqa: E731
        s.replace("#quot;", '"').replace("#lt;", "<").replace("#gt;", ">").replace("#35;", "#")
    )
    labels: dict[str, str] = {}
    edges = set()
    for line in lines[1:]:
        if m := re.fullmatch(r"  (n\d+)[\[\(\{/]+\"(.*?)\"[\]\)\}/]+:::(\w+)", line):
            assert m[1] not in labels
            labels[m[1]] = unescape(m[2])
        elif m := re.fullmatch(r"  (n\d+) -->\|(\w+)\| (n\d+)", line):
            edges.add((m[1], m[3], m[2]))
        else:
            assert re.fullmatch(r"  (classDef \w+ fill:#\w+,stroke:#\w+|style n\d+ .*)", line), line
    for source, target, _ in edges:
        assert source in labels and target in labels  # every edge joins declared nodes
    return labels, {(labels[s], labels[t], k) for s, t, k in edges}


def test_mermaid_reads_back_to_the_same_subgraph(fraud: LineageGraph) -> None:
    for root in ("deployment/fraud", us(1)):
        for direction in ("upstream", "downstream"):
            result = fraud.lineage(root, direction)  # type: ignore[arg-type]
            text = render(fraud, root, direction=direction, format="mermaid")  # type: ignore[arg-type]
            labels, edges = parse_mermaid(text)
            assert sorted(labels.values()) == sorted(result.nodes)
            assert edges == {(e.source, e.target, e.kind) for e in result.edges}


def test_cli_lineage_prints_each_format(tmp_path) -> None:
    """``featureledger lineage ID --format F`` on a real store, read back as above."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
    from featureledger.cli.main import app

    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    user = Entity("user", join_keys=["user_id"])
    group = FeatureGroup("spend", user, features=[Field("total", "float64")])
    store = FeatureStore.init(tmp_path / "repo")
    store.apply([user, group, FeatureView("v", [group])])
    for day in range(3):  # a chain of data versions, each defined by spend@v1
        rows = {"user_id": [1, 2], "event_timestamp": [t0 + timedelta(days=day)] * 2}
        store.ingest("spend", pa.table({**rows, "total": [1.0 * day, 2.0]}))
    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table({"user_id": [1], "event_timestamp": [t0 + timedelta(days=5)]}), entities
    )
    store.training_data("v", pq.read_table(entities))
    root = "training_dataset/v@v1/1"

    def run(fmt: str) -> str:
        result = CliRunner().invoke(
            app, ["lineage", root, "--format", fmt, "--repo", str(store.repo)]
        )
        assert result.exit_code == 0, result.output
        return result.output

    text = run("text")
    assert text.startswith(root)
    links = tree_links(text)
    assert len(links) == len(set(links)) and links.count("feature_group/spend@v1  [defines]") == 1
    assert_well_drawn(text)
    doc = json.loads(run("json"))
    edges = {(e["source"], e["target"], e["kind"]) for e in doc["edges"]}
    nodes = {n["id"] for n in doc["nodes"]}
    assert {"feature_group/spend@v1#3", "feature_group/spend@v1", "feature_view/v@v1"} <= nodes
    assert parse_dot(run("dot")) == (nodes, edges)
    labels, mermaid_edges = parse_mermaid(run("mermaid"))
    assert sorted(labels.values()) == sorted(nodes) and mermaid_edges == edges
    bad = CliRunner().invoke(app, ["lineage", root, "--format", "svg", "--repo", str(store.repo)])
    assert bad.exit_code == 2 and "not one of text, json, dot, mermaid" in bad.output
