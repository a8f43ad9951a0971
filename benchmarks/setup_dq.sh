#!/usr/bin/env bash
# Create benchmarks/.venv-dq with pandera and Great Expectations (plus featureledger itself),
# for the side-by-side figures of bench_contracts.py --compare. Neither tool is ever a
# dependency of featureledger.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-dq"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -e "$here/.." pandas pandera great-expectations
"$venv/bin/python" -c "import pandera, great_expectations as gx, duckdb; print('pandera', pandera.__version__, 'great_expectations', gx.__version__, 'duckdb', duckdb.__version__)"
