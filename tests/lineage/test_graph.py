"""The lineage DAG: queries, cycle refusal, and the graph `build_graph` makes from records."""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featureledger.definitions import VersionId
from featureledger.errors import NotFoundError
from featureledger.lineage import (
    DeploymentRecord,
    LineageCycleError,
    LineageGraph,
    ModelRecord,
    build_graph,
    kind_of,
)

from .conftest import (
    T0,
    TXN_SRC,
    USERS_SRC,
    data_version,
    fraud_records,
    run_id,
    run_record,
    training_dataset,
    tx,
    us,
)


def chain(*names: str) -> LineageGraph:
    g = LineageGraph()
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b, "read")
    return g


# -- kinds ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("identity", "kind"),
    [
        ("feature_group/user_stats@v2#17", "data_version"),
        ("feature_group/user_stats@v2", "feature_group"),
        ("feature_view/fraud@v1", "feature_view"),
        ("training_dataset/fraud@v1/3", "training_dataset"),
        ("model/fraud_xgb/4", "model"),
        ("deployment/fraud", "deployment"),
        ("run/0f6e6c1a-5bb0-4c1d-9d1e-0a5a2f3c4d5e", "run"),
        ("run/9a8b", "run"),  # run ids may start with a digit, unlike other names
        ("s3://bucket/raw/users.parquet", "source"),
        ("/data/raw.csv", "source"),
        ("source/crm_export", "source"),
        ("entity/user", "entity"),
    ],
)
def test_kind_of(identity: str, kind: str) -> None:
    assert kind_of(identity) == kind


# -- queries --------------------------------------------------------------------------------------
def test_ancestors_and_descendants_with_distance_and_depth() -> None:
    g = chain("a", "b", "c", "d")
    g.add_edge("x", "c", "read")
    assert g.ancestors("d") == {"c": 1, "b": 2, "x": 2, "a": 3}
    assert g.ancestors("d", depth=1) == {"c": 1}
    assert g.ancestors("d", depth=0) == {}
    assert g.descendants("a") == {"b": 1, "c": 2, "d": 3}
    assert g.descendants("x", depth=1) == {"c": 1}
    assert g.descendants("d") == {}
    with pytest.raises(ValueError, match="depth"):
        g.ancestors("d", depth=-1)


def test_lineage_result_holds_the_edges_among_reached_nodes() -> None:
    g = chain("a", "b", "c")
    g.add_edge("a", "c", "pinned")
    up = g.lineage("c", "upstream", depth=1)
    assert up.nodes == {"c": 0, "b": 1, "a": 1}
    assert {(e.source, e.target) for e in up.edges} == {("b", "c"), ("a", "c"), ("a", "b")}
    down = g.lineage("a", "downstream")
    assert all(e.source in down.nodes and e.target in down.nodes for e in down.edges)
    with pytest.raises(ValueError, match="direction"):
        g.lineage("a", "sideways")  # type: ignore[arg-type]


def test_unknown_identity_is_not_found_with_a_hint() -> None:
    g = chain("feature_group/user_stats@v1#1", "feature_group/user_stats@v1#2")
    with pytest.raises(NotFoundError, match=r"did you mean feature_group/user_stats@v1#1"):
        g.ancestors("feature_group/user_stats@v1")
    with pytest.raises(NotFoundError, match="not in the lineage graph"):
        g.impact("model/nope/1")


def test_identities_are_canonical() -> None:
    g = chain("feature_group/user_stats@v1#1", "training_dataset/fraud@v1/2")
    assert g.descendants(VersionId("feature_group", "user_stats", 1, 1)) == {
        "training_dataset/fraud@v1/2": 1
    }
    assert "  feature_group/user_stats@v1#1 " in g
    assert g.node("training_dataset/fraud@v1/2").kind == "training_dataset"


def test_deep_chains_need_no_recursion() -> None:
    n = 30_000
    g = LineageGraph()
    for i in range(n - 1):
        g.add_edge(f"feature_group/g@v1#{i}", f"feature_group/g@v1#{i + 1}", "parent")
    assert len(g.ancestors(f"feature_group/g@v1#{n - 1}")) == n - 1
    assert len(g.impact("feature_group/g@v1#0").data_versions) == n - 1


# -- cycles ---------------------------------------------------------------------------------------
def test_an_edge_closing_a_cycle_is_refused_with_the_path() -> None:
    g = chain("a", "b", "c")
    with pytest.raises(LineageCycleError) as info:
        g.add_edge("c", "a", "read")
    err = info.value
    assert (err.source, err.target, err.path) == ("c", "a", ["a", "b", "c"])
    assert "a -> b -> c -> a" in str(err)
    assert g.edge("c", "a") is None
    assert g.descendants("a") == {"b": 1, "c": 2}
    with pytest.raises(LineageCycleError):
        g.add_edge("b", "b", "read")


def test_a_repeated_edge_keeps_its_first_evidence() -> None:
    g = LineageGraph()
    first = g.add_edge("a", "b", "pinned", run="r1")
    again = g.add_edge("a", "b", "read", run="r2")
    assert again is first and g.edge_count == 1


def _reaches(edges: set[tuple[int, int]], start: int, goal: int) -> bool:
    todo, seen = deque([start]), {start}
    while todo:
        u = todo.popleft()
        if u == goal:
            return True
        for a, b in edges:
            if a == u and b not in seen:
                seen.add(b)
                todo.append(b)
    return False


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=70))
def test_edges_are_refused_exactly_when_they_close_a_cycle(pairs: list[tuple[int, int]]) -> None:
    g = LineageGraph()
    kept: set[tuple[int, int]] = set()
    for a, b in pairs:
        closes = a == b or _reaches(kept, b, a)
        if closes:
            with pytest.raises(LineageCycleError):
                g.add_edge(str(a), str(b), "read")
        else:
            g.add_edge(str(a), str(b), "read")
            kept.add((a, b))
        # the maintained order stays topological
        position = {n: i for i, n in enumerate(g.topological_order())}
        assert all(position[e.source] < position[e.target] for e in g.edges())
    assert {(int(e.source), int(e.target)) for e in g.edges()} == kept


# -- impact ---------------------------------------------------------------------------------------
def test_impact_groups_descendants_by_kind_in_natural_order() -> None:
    g = LineageGraph()
    for v in (2, 10, 9):
        g.add_edge("feature_group/g@v1#1", f"feature_group/g@v1#{v}", "parent")
    g.add_edge("feature_group/g@v1#10", "training_dataset/t@v1/1", "pinned")
    impact = g.impact("feature_group/g@v1#1")
    assert impact.data_versions == [f"feature_group/g@v1#{v}" for v in (2, 9, 10)]
    assert impact.training_datasets == ["training_dataset/t@v1/1"]
    assert impact.models == [] and impact.deployments == [] and len(impact) == 4
    assert impact.to_dict()["counts"] == {"data_version": 3, "training_dataset": 1}


# -- build_graph ----------------------------------------------------------------------------------
def test_impact_lists_exactly_the_dependents(fraud: LineageGraph) -> None:
    # us#3 is an overwrite and us#5 a rollback to #2: neither builds on #3 or #4
    impact = fraud.impact(us(1))
    assert impact.affected == {
        "data_version": [us(2), us(5)],
        "run": [f"run/{run_id(101)}", f"run/{run_id(103)}"],
        "training_dataset": ["training_dataset/fraud@v1/1", "training_dataset/fraud@v1/3"],
        "model": ["model/fraud_xgb/1", "model/fraud_xgb/3"],
        "deployment": ["deployment/fraud", "deployment/shadow"],
    }
    assert impact.serving == ["deployment/fraud", "deployment/shadow"]

    impact = fraud.impact(us(3))
    assert impact.affected == {
        "data_version": [us(4)],
        "run": [f"run/{run_id(102)}"],
        "training_dataset": ["training_dataset/fraud@v1/2"],
        "model": ["model/fraud_xgb/2"],
        "deployment": ["deployment/fraud"],
    }
    # fraud was rolled back from model 2 to model 1: it served model 2, it no longer does
    assert impact.serving == []

    assert fraud.impact("deployment/fraud").affected == {}


def test_impact_of_a_source_and_of_a_definition(fraud: LineageGraph) -> None:
    from_source = fraud.impact(USERS_SRC)
    assert from_source.data_versions == [us(v) for v in (1, 2, 3, 4, 5)]
    assert len(from_source.training_datasets) == 3
    from_txn_source = fraud.impact(TXN_SRC)
    assert from_txn_source.data_versions == [tx(1), tx(2), tx(3)]
    definition = fraud.impact("feature_group/user_stats@v1")
    assert definition.data_versions == [us(v) for v in range(6)]
    assert definition.affected["feature_view"] == ["feature_view/fraud@v1"]


def test_build_graph_edges_and_evidence(fraud: LineageGraph) -> None:
    def kind(a: str, b: str) -> str | None:
        edge = fraud.edge(a, b)
        return None if edge is None else edge.kind

    assert kind(us(1), us(2)) == "parent"
    assert kind(us(2), us(3)) is None  # overwrite
    assert kind(us(3), us(4)) == "parent"
    assert kind(us(4), us(5)) is None and kind(us(2), us(5)) == "restored"
    assert kind(tx(2), tx(3)) == "parent"  # compaction keeps the content
    assert kind("feature_group/user_stats@v1", us(4)) == "defines"
    assert kind("feature_group/txn@v1", "feature_view/fraud@v1") == "selected"
    assert kind("feature_view/fraud@v1", "training_dataset/fraud@v1/2") == "materialized"
    assert kind(tx(3), "training_dataset/fraud@v1/2") == "pinned"
    assert kind("training_dataset/fraud@v1/2", "model/fraud_xgb/2") == "trained_on"
    assert kind(USERS_SRC, f"run/{run_id(1)}") == "read"
    assert kind(f"run/{run_id(1)}", us(1)) == "wrote"
    assert fraud.edge(us(2), "training_dataset/fraud@v1/1").run == run_id(101)  # type: ignore[union-attr]
    deployed = fraud.edge("model/fraud_xgb/1", "deployment/fraud")
    assert deployed is not None and len(deployed.detail["at"]) == 2
    assert fraud.node("deployment/fraud").attrs["model"] == "model/fraud_xgb/1"
    run = fraud.node(f"run/{run_id(1)}")
    assert run.attrs["job"] == "ingest" and run.attrs["status"] == "succeeded"
    assert fraud.node(us(3)).attrs["operation"] == "overwrite"
    assert fraud.counts()["data_version"] == 10


def test_ancestors_reach_from_the_deployment_to_the_raw_sources(fraud: LineageGraph) -> None:
    up = fraud.ancestors("deployment/fraud")
    assert {USERS_SRC, TXN_SRC} <= set(up)
    assert up["model/fraud_xgb/1"] == 1 and up["training_dataset/fraud@v1/1"] == 2
    assert "training_dataset/fraud@v1/3" not in up


def test_rollback_target_from_the_note_alone() -> None:
    records = [
        data_version("g", 0, "create", None),
        data_version("g", 1, "upsert", None),
        data_version("g", 2, "upsert", None),
        data_version("g", 3, "rollback", None, note="rollback to #1: oops"),
        data_version("g", 4, "rollback", None, note="restored by hand"),  # target unknown
    ]
    g = build_graph(records)
    assert g.edge("feature_group/g@v1#1", "feature_group/g@v1#3").kind == "restored"  # type: ignore[union-attr]
    # unknown target: assume it builds on its predecessor, over-reporting impact
    assert g.edge("feature_group/g@v1#3", "feature_group/g@v1#4").kind == "parent"  # type: ignore[union-attr]


def test_without_run_nodes_runs_are_evidence_on_direct_edges() -> None:
    g = build_graph(fraud_records(), include_runs=False)
    assert g.counts().get("run") is None
    edge = g.edge(USERS_SRC, us(1))
    assert edge is not None and edge.kind == "read" and edge.run == run_id(1)
    # the pinned edge came first; the training run's read edge does not replace it
    assert g.edge(us(2), "training_dataset/fraud@v1/1").kind == "pinned"  # type: ignore[union-attr]
    assert g.impact(us(1)).deployments == ["deployment/fraud", "deployment/shadow"]


def test_an_unchanged_run_wrote_nothing() -> None:
    rid = run_id(7)
    records = [
        data_version("g", 0, "create", None),
        data_version("g", 1, "upsert", run_id(1)),
        run_record(rid, "pipeline", ["/data/in.csv"], ["feature_group/g@v1#1"], status="unchanged"),
    ]
    g = build_graph(records)
    assert g.edge(f"run/{rid}", "feature_group/g@v1#1") is None
    assert g.edge("/data/in.csv", f"run/{rid}") is not None
    assert g.node(f"run/{rid}").attrs["status"] == "unchanged"


def test_models_and_deployments_hooks() -> None:
    records = [
        training_dataset("v", 1, {"g": (1, 0)}, run_id(1)),
        ModelRecord("m", 1, "training_dataset/v@v1/1"),
        ModelRecord("m", 2, None),  # registered without a training set
        DeploymentRecord("prod", "model/m/2", T0),
    ]
    g = build_graph(records)
    assert g.ancestors("deployment/prod") == {"model/m/2": 1}
    assert g.impact("feature_group/g@v1#0").models == ["model/m/1"]


def test_records_describing_a_cycle_are_refused_or_dropped() -> None:
    records = [
        data_version("g", 0, "create", None),
        data_version("g", 1, "upsert", None),
        # a pipeline that claims to have read #1 and written #0
        run_record(run_id(9), "pipeline", ["feature_group/g@v1#1"], ["feature_group/g@v1#0"]),
    ]
    with pytest.raises(LineageCycleError) as info:
        build_graph(records)
    assert "feature_group/g@v1#0" in info.value.path and "cycle" in str(info.value)
    g = build_graph(records, strict=False)
    assert len(g.refused) == 1
    position = {n: i for i, n in enumerate(g.topological_order())}
    assert all(position[e.source] < position[e.target] for e in g.edges())


def test_build_graph_refuses_unknown_records() -> None:
    with pytest.raises(TypeError, match="cannot use dict"):
        build_graph([{"group": "g"}])


def test_a_bulk_loaded_graph_accepts_new_edges(fraud: LineageGraph) -> None:
    # a model registered after the graph was built, trained on an existing set
    fraud.add_edge("training_dataset/fraud@v1/3", "model/fraud_lgbm/1", "trained_on")
    assert "model/fraud_lgbm/1" in fraud.impact(us(5)).models
    with pytest.raises(LineageCycleError):
        fraud.add_edge("deployment/fraud", us(1), "read")
