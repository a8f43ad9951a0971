#!/usr/bin/env bash
# Create benchmarks/.venv-feast with Feast and its DuckDB offline store, for the
# baselines of bench_pit.py and bench_online_vs_feast.py (its SQLite online store and
# `feast serve` come with it). Feast is never a dependency of featureledger itself.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-feast"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "feast[duckdb]${FEAST_VERSION:+==$FEAST_VERSION}"
"$venv/bin/python" -c "import feast, duckdb, pyarrow; print('feast', feast.__version__, 'duckdb', duckdb.__version__, 'pyarrow', pyarrow.__version__)"
