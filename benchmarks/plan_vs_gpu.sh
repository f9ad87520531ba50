#!/bin/bash
# The GPU side of issue 27 in one run (benchmarks/plan_vs_gpu.py for two configs), on a CUDA
# machine with jax[cuda], flax, optax, orbax-checkpoint and chex; OUT=DIR for the results.
set -u
OUT=${OUT:-/tmp/plan_vs_gpu}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
PY=${PY:-python3}
nvidia-smi -L > "$OUT/env.txt" 2>&1
$PY -c 'import jax, flax; print(jax.__version__, flax.__version__, jax.devices())' >> "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
for spec in "gpt2_small_b16 configs/gpt2_small.py --config.batch_size=16" \
            "wmt14_base configs/wmt14_ende_base.py"; do
  set -- $spec
  name=$1 config=$2
  shift 2
  timeout 240 $PY benchmarks/plan_vs_gpu.py --out="$OUT" --name="$name" --config="$config" "$@" \
    > "$OUT/$name.log" 2>&1
  echo "== $name: exit $?"
  grep -v -E '^[IWE][0-9]{4} ' "$OUT/$name.log" | tail -n 25
done
