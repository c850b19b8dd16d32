#!/usr/bin/env bash
# DADApy 0.3.4 pins jax==0.4.30 and numpy<2, which cannot live beside our jax. The II tests use it
# as the reference, so it gets its own small venv (numpy 1.x + scikit-learn + DADApy without its
# jax extras, which MetricComparisons does not need). Idempotent; the tests find it through
# $REPSIM_DADAPY_PYTHON or this default path.
set -euo pipefail
VENV="${REPSIM_DADAPY_VENV:-$HOME/.cache/repsim_jax/dadapy-venv}"
if "$VENV/bin/python" -c "import dadapy" >/dev/null 2>&1; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q dadapy==0.3.4
"$VENV/bin/python" -c "import dadapy"
