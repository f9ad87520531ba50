#!/bin/bash
# Every GPU check of this codebase in one run (a CUDA machine with jax[cuda], flax, optax,
# orbax-checkpoint, chex, pytest-xdist, torch and transformers; nothing is downloaded):
#
#   TRANSFORMER_DATA_DIR=DIR OUT=RESULTS_DIR bash benchmarks/gpu_checks.sh
#
# DIR holds tiny_shakespeare/input.txt. Each section writes RESULTS_DIR/<section>.txt and
# has its own time limit, so a slow section cannot take the others' results with it:
#   env         the GPU, JAX and its devices
#   model_tests tests/model on the GPU (numerics against float64 NumPy, cached decoding,
#               the Hugging Face fixtures): float32 matmuls on a GPU may run in TF32
#   matmul      the bf16 and float32 matrix-multiply rate of this GPU (8192^3, jnp.dot),
#               the ceiling the train steps are compared with
#   train_*     benchmarks/train_speed.py: the Shakespeare recipe as it is (float32), and a
#               GPT-2-small shape (12 x 768, 1024 tokens, batch 16) in bfloat16 with XLA's
#               attention and with cuDNN's flash attention
#   decode_*    benchmarks/hf_decode_speed.py with both sides on the GPU: GPT-2-shaped
#               greedy, T5-shaped beam 4
set -u
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
PY=${PY:-python3}
run() {   # run NAME SECONDS COMMAND...: output to $OUT/NAME.txt, the last lines shown
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "== $name: exit $? in $((SECONDS - t0)) s" | tee -a "$OUT/$name.txt"
  grep -v -E '^[IW][0-9]{4} |WARNING|Writing model' "$OUT/$name.txt" | tail -n 14
}

run env 60 bash -c "nvidia-smi -L; $PY -c 'import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())'"

run model_tests 170 $PY -m pytest -q -x -n 8 -p no:cacheprovider tests/model \
  -o cache_dir=/tmp/pytest_cache

run matmul 60 $PY -c '
import time, jax, jax.numpy as jnp
for dtype in (jnp.bfloat16, jnp.float32):
  a = jax.random.normal(jax.random.PRNGKey(0), (8192, 8192), dtype)
  f = jax.jit(lambda a, b: a @ b)
  f(a, a).block_until_ready()
  t = time.perf_counter()
  for _ in range(10):
    out = f(a, a)
  out.block_until_ready()
  s = (time.perf_counter() - t) / 10
  print(f"{jnp.dtype(dtype).name} 8192^3 matmul: {2 * 8192**3 / s / 1e12:.1f} TFLOP/s")
'

GPT2S="--config.model.d_model=768 --config.model.num_decoder_layers=12 --config.model.num_heads=12
  --config.model.d_ff=3072 --config.model.max_len=1024 --config.seq_len=1024 --config.batch_size=16
  --config.model.dtype=bfloat16 --eval=false"
run train_shakespeare 100 $PY benchmarks/train_speed.py --steps=50 --eval=false
run train_gpt2s_xla 100 $PY benchmarks/train_speed.py --steps=20 $GPT2S
run train_gpt2s_cudnn 100 $PY benchmarks/train_speed.py --steps=20 $GPT2S \
  --config.model.attention_impl=cudnn

run decode_gpt2 100 $PY benchmarks/hf_decode_speed.py --model=gpt2 --positions=1024 \
  --batches=1,8 --rounds=3 --hf_device=cuda
run decode_t5 100 $PY benchmarks/hf_decode_speed.py --model=t5 --rounds=3 --hf_device=cuda
