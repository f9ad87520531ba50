"""What a decoding step costs against the model's max_len: the key/value cache sized to the
request (transformer.decoding.sized_for, the default) against one of max_len slots.

A small random DecoderLM greedily continues B prompts by N tokens at several max_len values,
in interleaved rounds in one process; each variant is compiled before it is timed, and
both give the same tokens (checked). Prints ms per generated token (median, p10-p90) and
the ratio of each max_len's time to the smallest max_len's:

  python benchmarks/decode_cache.py [--layers=2] [--width=128] [--batch=4] [--prompt=8]
                                    [--tokens=96] [--max_lens=256,1024,2048,4096] [--rounds=5]
"""

import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import decoder_lm_flags, random_decoder_lm  # noqa: E402  (benchmarks/)


def main():
  p = decoder_lm_flags(rounds=5)
  p.add_argument('--prompt', type=int, default=8)
  p.add_argument('--max_lens', default='256,1024,2048,4096')
  args = p.parse_args()

  from transformer import decoding, host
  host.tune_allocator()
  max_lens = [int(m) for m in args.max_lens.split(',')]
  prompt = jax.random.randint(jax.random.PRNGKey(1), (args.batch, args.prompt), 4, 256)
  base, params = random_decoder_lm(args, max(max_lens), prompt)
  variants = {}
  for m in max_lens:
    cfg = base.replace(max_len=m)
    variants[f'sized, max_len {m}'] = cfg
    variants[f'max_len cache, max_len {m}'] = cfg.replace(cache_len=m)

  def run(cfg):
    out = decoding.generate(params, cfg, prompt, args.tokens, temperature=0.0)
    return np.asarray(jax.block_until_ready(out))

  outputs = {name: run(cfg) for name, cfg in variants.items()}   # compile each
  first = next(iter(outputs.values()))
  same = all(np.array_equal(first, o) for o in outputs.values())
  times = {name: [] for name in variants}
  for _ in range(args.rounds):
    for name, cfg in variants.items():
      t0 = time.perf_counter()
      run(cfg)
      times[name].append((time.perf_counter() - t0) / args.tokens * 1000)
  print(f'DecoderLM {args.layers} x {args.width}, batch {args.batch}, prompt {args.prompt}, '
        f'{args.tokens} greedy tokens, {args.rounds} interleaved rounds, '
        f'{jax.devices()[0].platform}; same tokens in every variant: {same}')
  print(f'{"variant":34s} {"ms/token":>9s} {"p10-p90":>15s} {"vs smallest max_len":>20s}')
  for kind in ('sized', 'max_len cache'):
    ref = statistics.median(times[f'{kind}, max_len {max_lens[0]}'])
    for m in max_lens:
      t = times[f'{kind}, max_len {m}']
      q = np.percentile(t, [10, 90])
      print(f'{kind + ", max_len " + str(m):34s} {statistics.median(t):9.3f} '
            f'{q[0]:7.3f}-{q[1]:<7.3f} {statistics.median(t) / ref:19.2f}x')
  if not same:
    raise SystemExit('the variants gave different tokens')


if __name__ == '__main__':
  main()
