"""Run the fuzz cases of tests/fuzz at scale and print what happened to each.

    python scripts/fuzz.py                        # 10,000 cases: the figure in docs/reliability.md
    python scripts/fuzz.py --only ingest --ingest 500

Each case is one generated input (an ingest batch in one of 8 formats, a contract YAML
text, a definition, an HTTP body) checked by the same function the pytest suite uses
(tests/fuzz/cases.py). Outcomes are counted: accepted, refused (by error class or HTTP
status), and crashes: an exception outside featureledger.errors or a broken invariant
(a refused input changed the previous version, or its message names no column or row).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import UnsatisfiedAssumption  # noqa: E402
from tests.fuzz import cases  # noqa: E402

DEFAULTS = {"ingest": 500, "contract": 2000, "definitions": 6000, "http": 1500}


def run(
    name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], str], n: int
) -> Counter[str]:
    counts: Counter[str] = Counter()
    crashes: list[str] = []

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def body(case: Any) -> None:
        try:
            counts[check(case)] += 1
        except UnsatisfiedAssumption:
            counts["skipped: the format cannot hold the input"] += 1
            raise
        except Exception as exc:
            counts["crash"] += 1
            if len(crashes) < 5:
                crashes.append(f"{type(exc).__name__}: {exc}\n  case: {case!r}"[:2000])
            raise

    started = time.monotonic()
    try:
        body()
    except Exception:  # a crash: hypothesis stops at the first one, after shrinking it
        traceback.print_exc(limit=3)
    seconds = time.monotonic() - started
    total = sum(v for k, v in counts.items() if not k.startswith("skipped"))
    print(f"{name}: {total} cases in {seconds:.0f} s, {counts['crash']} crashes")
    for outcome, count in sorted(counts.items()):
        print(f"  {outcome:40s} {count}")
    for crash in crashes:
        print("  CRASH", crash)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in DEFAULTS.items():
        parser.add_argument(
            f"--{name}", type=int, default=default, help=f"cases (default {default})"
        )
    parser.add_argument("--only", choices=sorted(DEFAULTS), action="append")
    args = parser.parse_args()
    chosen = args.only or list(DEFAULTS)
    total: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = cases.make_store(folder / "repo") if {"ingest", "http"} & set(chosen) else None
        if "ingest" in chosen:
            assert store is not None
            batches = folder / "batches"
            batches.mkdir()
            total += run(
                "ingest", cases.frames(), lambda c: cases.run_ingest(store, c, batches), args.ingest
            )
        if "contract" in chosen:
            total += run("contract YAML", cases.contract_texts(), cases.run_contract, args.contract)
        if "definitions" in chosen:
            total += run("definitions", cases.definitions(), cases.run_definition, args.definitions)
        if "http" in chosen:
            from fastapi.testclient import TestClient

            from featureledger.server import create_app

            assert store is not None
            tokens = {
                "writer": store.create_token("writer"),
                "reader": store.create_token("reader"),
            }
            with TestClient(create_app(store, max_body_bytes=1 << 20)) as client:
                total += run(
                    "HTTP bodies",
                    cases.http_bodies(),
                    lambda c: cases.run_http(client, tokens, store, c),
                    args.http,
                )
    cases_run = sum(v for k, v in total.items() if not k.startswith("skipped"))
    print(f"total: {cases_run} cases, {total['crash']} crashes")
    return 1 if total["crash"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
