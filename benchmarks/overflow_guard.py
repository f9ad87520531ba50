"""What the key/value cache's overflow guard costs a decoding step (transformer/attention.py).

Under jit the cache's write index is a tracer, so a write past the end cannot raise; since
2026-12-04 each cached self-attention layer then turns its output into NaN (one compare and
one select per layer and step) instead of silently clamping the write. This times greedy
cached decoding of a small random DecoderLM with the guard, and with it removed by
patching `_update_cache` to report no overflow, in interleaved rounds in one process, and
checks both give the same tokens:

  python benchmarks/overflow_guard.py [--layers=2] [--width=128] [--batch=4] [--tokens=96]
"""

import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import decoder_lm_flags, random_decoder_lm  # noqa: E402  (benchmarks/)


def main():
  p = decoder_lm_flags(rounds=7)
  p.add_argument('--max_len', type=int, default=256)
  args = p.parse_args()

  from transformer import attention, decoding, host
  host.tune_allocator()
  prompt = jnp.ones((args.batch, 4), jnp.int32)
  cfg, params = random_decoder_lm(args, args.max_len, prompt)
  guarded = attention.MultiHeadAttention._update_cache

  def unguarded(self, key, value):
    k, v, mask, _ = guarded(self, key, value)
    return k, v, mask, None

  def run():   # decoding.generate jits per call signature: clear it between variants
    jax.clear_caches()
    out = decoding.generate(params, cfg, prompt, args.tokens, temperature=0.0)
    jax.block_until_ready(out)                         # compile
    t0 = time.perf_counter()
    out = decoding.generate(params, cfg, prompt, args.tokens, temperature=0.0)
    jax.block_until_ready(out)
    return time.perf_counter() - t0, np.asarray(out)

  times = {'guard': [], 'no guard': []}
  outs = {}
  for _ in range(args.rounds):
    for name in times:
      attention.MultiHeadAttention._update_cache = guarded if name == 'guard' else unguarded
      seconds, outs[name] = run()
      times[name].append(seconds)
  attention.MultiHeadAttention._update_cache = guarded
  same = bool(np.array_equal(outs['guard'], outs['no guard']))
  med = {k: statistics.median(v) for k, v in times.items()}
  for name, m in med.items():
    print(f'{name:9s} median {1000 * m:.1f} ms for {args.batch} x {args.tokens} tokens '
          f'({args.batch * args.tokens / m:.0f} tokens/s)')
  print(f'guard / no guard: {med["guard"] / med["no guard"]:.3f}; same tokens: {same}')


if __name__ == '__main__':
  main()
