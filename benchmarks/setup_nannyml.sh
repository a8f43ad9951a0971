#!/usr/bin/env bash
# Create benchmarks/.venv-nannyml with NannyML, the baseline of
# bench_performance_estimation.py (CBPE, DLE). NannyML is never a dependency of
# featureledger itself: it pins its own pandas/numpy/scikit-learn ranges.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-nannyml"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
# nannyml 0.13.1 imports statsmodels (plots/components/joy_plot.py) without declaring it
# since category-encoders 2.7 stopped pulling it in: install it beside
"$venv/bin/pip" install --quiet "nannyml${NANNYML_VERSION:+==$NANNYML_VERSION}" statsmodels
"$venv/bin/python" -c "import nannyml, pandas, sklearn; print('nannyml', nannyml.__version__, 'pandas', pandas.__version__, 'scikit-learn', sklearn.__version__)"
