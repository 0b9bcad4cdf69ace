#!/usr/bin/env bash
# The GPU check: benchmarks/gpu.py on every Keras backend installed, one process each, with
# the GPU's name and driver first. On a lent GPU (under 8 minutes):
#   bash benchmarks/gpu.sh            # 224 px, VGG16 and EfficientNet-Lite0, mixed precision off/on
#   bash benchmarks/gpu.sh --dry      # the same code on the CPU at 32 px, TensorFlow only (CI)
# $BACKENDS overrides the backends tried (e.g. BACKENDS=torch).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
else
    echo "no nvidia-smi: no GPU visible"
fi
default="tensorflow jax torch"
[[ " $* " == *" --dry "* ]] && default="tensorflow"
for backend in ${BACKENDS:-$default}; do
    module=$backend
    if python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)"; then
        python3 benchmarks/gpu.py --backend "$backend" "$@"
    else
        echo "backend $backend: not installed, skipped"
    fi
done
