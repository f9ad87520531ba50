"""Greedy decoding side by side with Hugging Face transformers (PyTorch, eager, its dynamic
key/value cache) on the same weights: a random GPT-2-shaped model saved by transformers,
imported through transformer.convert (the `tools.convert import` path), both greedily
continuing the same prompts. Run by hand (torch and transformers are not CI requirements):

  pip install torch transformers
  python benchmarks/hf_decode_speed.py [--layers=6] [--width=512] [--heads=8]
      [--positions=256,1024] [--batches=1,8] [--prompt=8] [--tokens=128] [--threads=1]
      [--rounds=5]

--threads sets both sides' threads (torch.set_num_threads; XLA's CPU thread pool through
XLA_FLAGS, before JAX starts). Rounds are interleaved (ours, then HF, per round) after one
untimed call of each (compilation, warm-up); prints tokens/s medians with p10-p90, the
ratio ours/HF, and whether the generated ids are identical.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--layers', type=int, default=6)
  p.add_argument('--width', type=int, default=512)
  p.add_argument('--heads', type=int, default=8)
  p.add_argument('--vocab', type=int, default=50257)
  p.add_argument('--positions', default='256,1024')
  p.add_argument('--batches', default='1,8')
  p.add_argument('--prompt', type=int, default=8)
  p.add_argument('--tokens', type=int, default=128)
  p.add_argument('--threads', type=int, default=1)
  p.add_argument('--rounds', type=int, default=5)
  args = p.parse_args()
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             f' --xla_cpu_multi_thread_eigen={str(args.threads > 1).lower()}'
                             f' intra_op_parallelism_threads={args.threads}')
  import jax
  import numpy as np
  import torch
  import transformers

  from transformer import convert, decoding, host
  from transformer import workdir as workdir_lib
  host.tune_allocator()
  torch.set_num_threads(args.threads)
  print(f'GPT-2-shaped {args.layers} x {args.width}, {args.heads} heads, vocab {args.vocab}, '
        f'prompt {args.prompt}, {args.tokens} greedy tokens, {args.threads} thread(s) each, '
        f'{args.rounds} interleaved rounds; torch {torch.__version__}, transformers '
        f'{transformers.__version__}, jax {jax.__version__}')
  print(f'{"n_positions":>11s} {"batch":>5s} {"ours tok/s":>16s} {"HF tok/s":>16s} '
        f'{"ours/HF":>8s}  same ids')
  for positions in [int(x) for x in args.positions.split(',')]:
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=args.heads,
                                     n_positions=positions, vocab_size=args.vocab)
    hf_model = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
      hf_dir, work = os.path.join(tmp, 'hf'), os.path.join(tmp, 'work')
      hf_model.save_pretrained(hf_dir)
      cfg, _, _ = convert.import_hf(hf_dir, work)
      params = workdir_lib.restore_params(work, None, False)   # verified, as every reader
    cfg = cfg.replace(deterministic=True, dropout_rate=0.0)
    for batch in [int(x) for x in args.batches.split(',')]:
      rng = np.random.default_rng(batch)
      prompt = rng.integers(0, args.vocab, size=(batch, args.prompt))

      def ours():
        out = decoding.generate(params, cfg, jax.numpy.asarray(prompt, jax.numpy.int32),
                                args.tokens, temperature=0.0)
        return np.asarray(jax.block_until_ready(out))

      def hf():
        with torch.no_grad():
          out = hf_model.generate(torch.as_tensor(prompt), max_new_tokens=args.tokens,
                                  min_new_tokens=args.tokens, do_sample=False,
                                  pad_token_id=0, eos_token_id=None,
                                  attention_mask=torch.ones(prompt.shape, dtype=torch.long))
        return out[:, args.prompt:].numpy()

      same = np.array_equal(ours(), hf())
      times = {'ours': [], 'hf': []}
      for _ in range(args.rounds):
        for name, fn in (('ours', ours), ('hf', hf)):
          t0 = time.perf_counter()
          fn()
          times[name].append(batch * args.tokens / (time.perf_counter() - t0))

      def fmt(v):
        q = np.percentile(v, [10, 90])
        return f'{statistics.median(v):7.0f} ({q[0]:.0f}-{q[1]:.0f})'
      ratio = statistics.median(times['ours']) / statistics.median(times['hf'])
      print(f'{positions:11d} {batch:5d} {fmt(times["ours"]):>16s} {fmt(times["hf"]):>16s} '
            f'{ratio:7.2f}x  {same}', flush=True)


if __name__ == '__main__':
  main()
