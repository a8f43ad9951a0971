"""``featureledger llm ...``: corpora, embedding indexes, search, traces (docs/llm.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from featureledger.cli import console as out
from featureledger.cli._common import RepoOpt, _store, app, handled

llm_app = typer.Typer(help="LLM artifacts: corpora, indexes, search, traces.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")


def _documents(path: Path) -> Any:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@llm_app.command("create-corpus")
@handled
def create_corpus(
    name: str,
    license: Annotated[list[str], typer.Option("--license", help="Licence(s) of the corpus.")] = [],  # noqa: B006
    allow: Annotated[
        list[str], typer.Option("--allow", help="Licence allow-list of the contract.")
    ] = [],  # noqa: B006
    pii: Annotated[
        list[str], typer.Option("--pii-detector", help="Opt in to a PII detector (email, ...).")
    ] = [],  # noqa: B006
    repo: RepoOpt = Path("."),
) -> None:
    """Create a corpus (or change its contract)."""
    from featureledger.llm import CorpusContract

    contract = CorpusContract(licenses=allow or None, pii_detectors=pii) if allow or pii else None
    _store(repo).llm.create_corpus(name, contract=contract, licenses=license)
    out.ok(f"corpus {name} ready")


@llm_app.command("add")
@handled
def add(
    corpus: str,
    path: Annotated[Path, typer.Argument(help="Documents: JSON lines or Parquet.")],
    repo: RepoOpt = Path("."),
) -> None:
    """Add or replace documents: one new corpus version; refused ones are kept aside."""
    done = _store(repo).llm.add_documents(corpus, _documents(path))
    if done.version is not None:
        out.ok(f"{done.version.identity}: {done.accepted} document(s) accepted")
    if done.rejected.num_rows:
        out.warn(f"{done.rejected.num_rows} document(s) refused, kept at {done.rejected_path}")


@llm_app.command("versions")
@handled
def versions(corpus: str, repo: RepoOpt = Path(".")) -> None:
    """Versions of a corpus."""
    rows = [
        (str(v.identity), v.operation, v.rows, str(v.content), v.created_at, v.note)
        for v in _store(repo).llm.corpus_versions(corpus)
    ]
    out.table(
        f"corpus {corpus}", ["version", "operation", "documents", "content", "at", "note"], rows
    )


@llm_app.command("diff")
@handled
def diff(
    corpus: str,
    old: int,
    new: Annotated[int | None, typer.Argument()] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Documents added, removed and changed between two corpus versions."""
    out.as_json(_store(repo).llm.diff_corpus(corpus, old, new))


@llm_app.command("build")
@handled
def build(
    index: str,
    corpus: str,
    corpus_version: Annotated[int | None, typer.Option(help="Default: latest.")] = None,
    activate: Annotated[bool, typer.Option("--activate/--candidate")] = True,
    repo: RepoOpt = Path("."),
) -> None:
    """Build a new index version (default chunker and embedder)."""
    record = _store(repo).llm.build_index(
        index, corpus, corpus_version=corpus_version, activate=activate
    )
    b = record.body
    out.ok(
        f"index/{index}/{record.version} ({b['key']}): {b['chunks']} chunks of "
        f"{b['corpus_identity']} in {b['build_seconds']} s"
    )


@llm_app.command("indexes")
@handled
def indexes(index: str, repo: RepoOpt = Path(".")) -> None:
    """Versions of an index; the served one is marked."""
    store = _store(repo)
    served = store.llm.current_index(index)
    rows = [
        (
            "*" if r.version == served else "",
            f"index/{index}/{r.version}",
            r.body["key"],
            r.body["corpus_identity"],
            r.body["chunker"]["hash"],
            r.body["embedder"]["hash"],
            r.body["chunks"],
            r.created_at,
        )
        for r in store.llm.index_versions(index)
    ]
    out.table(
        f"index {index}",
        ["", "version", "key", "corpus", "chunker", "embedder", "chunks", "at"],
        rows,
    )


@llm_app.command("search")
@handled
def search(
    index: str,
    query: str,
    k: Annotated[int, typer.Option("-k")] = 5,
    where: Annotated[list[str], typer.Option("--where", help="KEY=VALUE filter.")] = [],  # noqa: B006
    use: Annotated[str | None, typer.Option(help="Keep licences allowing this use.")] = None,
    include_pii: Annotated[bool, typer.Option("--include-pii")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    repo: RepoOpt = Path("."),
) -> None:
    """Top-k chunks of the served index version (recorded as a trace)."""
    filters: dict[str, list[str]] = {}
    for item in where:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--where {item!r}: write KEY=VALUE")
        filters.setdefault(key, []).append(value)
    found = _store(repo).llm.search(
        index, query, k=k, where=filters, use=use, include_pii=include_pii
    )
    if as_json:
        out.as_json(found.to_dict())
        return
    out.table(
        f"{found.index} ({found.trace}, {found.latency_ms} ms)",
        ["score", "doc", "license", "chunk", "text"],
        [(h.score, h.doc_id, h.license, h.chunk_id, h.text[:80]) for h in found.hits],
    )


@llm_app.command("rollback")
@handled
def rollback(
    index: str,
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")],
    to: Annotated[int | None, typer.Option(help="Default: the version served before.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Point an index back at an earlier version, in one recorded, audited step."""
    moved = _store(repo).llm.rollback_index(index, to=to, reason=reason)
    out.ok(f"index {index} serves version {moved.body['version']} (was {moved.body['previous']})")


@llm_app.command("lineage")
@handled
def lineage(trace: str, repo: RepoOpt = Path(".")) -> None:
    """From an answer's trace back to index, corpus version, documents and licences."""
    out.as_json(_store(repo).llm.lineage(trace))


@llm_app.command("impact")
@handled
def impact(corpus: str, doc_id: str, repo: RepoOpt = Path(".")) -> None:
    """Index versions, traces and fine-tuning sets that used a document."""
    out.as_json(_store(repo).llm.impact(corpus, doc_id))


@llm_app.command("forget")
@handled
def forget(
    corpus: str,
    doc_ids: list[str],
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")],
    repo: RepoOpt = Path("."),
) -> None:
    """Right to be forgotten: new corpus and index versions without the documents."""
    report = _store(repo).llm.forget(corpus, doc_ids, reason=reason)
    out.as_json(report.__dict__)


@llm_app.command("eval-set")
@handled
def eval_set(
    name: str,
    path: Annotated[Path, typer.Argument(help='JSON lines: {"query": ..., "relevant": [...]}.')],
    repo: RepoOpt = Path("."),
) -> None:
    """Record a new version of an evaluation set (queries and their relevant documents)."""
    record = _store(repo).llm.add_eval_set(name, _documents(path))
    out.ok(f"eval-set/{name}/{record.version}: {len(record.body['items'])} queries")


@llm_app.command("promote")
@handled
def promote(
    index: str,
    candidate: int,
    eval_set: str,
    k: Annotated[int, typer.Option("-k", help="Recall@k of the gate.")] = 10,
    min_recall: Annotated[float, typer.Option(help="Recall floor.")] = 0.0,
    max_latency_ratio: Annotated[
        float, typer.Option(help="Largest p50 latency of candidate / served.")
    ] = 2.0,
    force: Annotated[bool, typer.Option("--force", help="Serve it even if a gate fails.")] = False,
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")] = "",
    repo: RepoOpt = Path("."),
) -> None:
    """Serve a candidate index version if it passes the release gates against the served one."""
    from featureledger.llm.evaluate import LLMGates

    gates = LLMGates(k=k, min_recall=min_recall, max_latency_ratio=max_latency_ratio)
    result = _store(repo).llm.promote(
        index, candidate, eval_set, gates=gates, force=force, reason=reason
    )
    out.as_json(result.to_dict())


@llm_app.command("finetune-set")
@handled
def finetune_set(
    name: str,
    corpus: str,
    use: Annotated[str, typer.Option(help="The model's use: commercial, research, ...")],
    corpus_version: Annotated[int | None, typer.Option(help="Default: latest.")] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Pin a corpus version as a fine-tuning set; refused when a licence forbids ``use``."""
    record = _store(repo).llm.finetune_set(name, corpus, use=use, corpus_version=corpus_version)
    b = record.body
    out.ok(
        f"finetune-set/{name}/{record.version}: {b['documents']} documents of "
        f"{b['corpus_identity']} for {use} use, at {b['path']}"
    )
