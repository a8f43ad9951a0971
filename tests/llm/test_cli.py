"""``featureledger llm``: the commands call the store and print what it did."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from featureledger import FeatureStore
from featureledger.cli.main import app

runner = CliRunner()


def _run(repo: Path, *args: str) -> str:
    got = runner.invoke(app, ["llm", *args, "--repo", str(repo)])
    assert got.exit_code == 0, got.output
    return got.output


def test_corpus_index_search_rollback_and_forget_from_the_command_line(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    FeatureStore.init(repo).close()
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "\n".join(
            json.dumps(d)
            for d in [
                {
                    "doc_id": "a",
                    "text": "brake pads wear with every stop",
                    "license": "cc-by-4.0",
                    "metadata": {"topic": "brakes"},
                },
                {
                    "doc_id": "b",
                    "text": "engine oil should be changed yearly",
                    "license": "cc-by-4.0",
                    "metadata": {"topic": "engine"},
                },
                {"doc_id": "c", "text": "tyres", "license": "gpl-3.0"},
            ]
        )
    )
    _run(repo, "create-corpus", "docs", "--allow", "cc-by-4.0")
    added = _run(repo, "add", "docs", str(docs))
    assert "2 document(s) accepted" in added and "1 document(s) refused" in added
    assert "index/kb/1" in _run(repo, "build", "kb", "docs")
    found = json.loads(_run(repo, "search", "kb", "oil", "--where", "topic=engine", "--json"))
    assert [h["doc_id"] for h in found["hits"]] == ["b"]
    assert json.loads(_run(repo, "lineage", found["trace"]))["documents"][0][0] == "b"
    _run(repo, "build", "kb", "docs")
    assert "serves version 1 (was 2)" in _run(repo, "rollback", "kb", "--reason", "incident")
    assert json.loads(_run(repo, "impact", "docs", "b"))["traces"] == [found["trace"]]
    report = json.loads(_run(repo, "forget", "docs", "b", "--reason", "erasure"))
    assert report["corpus_version"] == "feature_group/docs@v1#2"
    assert json.loads(_run(repo, "diff", "docs", "1")) == {
        "added": [],
        "removed": ["b"],
        "changed": [],
    }
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"query": "brake pads", "relevant": ["a"]}))
    assert "eval-set/ev/1: 1 queries" in _run(repo, "eval-set", "ev", str(evals))
    built = _run(repo, "build", "kb", "docs", "--candidate")
    candidate = built.split("index/kb/")[1].split(" ")[0]
    # latency is not gated here: on a busy machine it varies more than twofold
    no_latency = ("--max-latency-ratio", "1e9")
    gate = json.loads(_run(repo, "promote", "kb", candidate, "ev", "-k", "1", *no_latency))
    assert gate["passed"] and gate["candidate"]["recall"] == 1.0
    refused = runner.invoke(
        app,
        ["llm", "promote", "kb", "1", "ev", "--min-recall", "2", *no_latency, "--repo", str(repo)],
    )
    assert refused.exit_code == 1 and "index/kb/1" in refused.output
    assert "for research use" in _run(repo, "finetune-set", "ft", "docs", "--use", "research")
    bad = runner.invoke(app, ["llm", "rollback", "nope", "--reason", "x", "--repo", str(repo)])
    assert bad.exit_code == 1 and "serves no version" in bad.output
