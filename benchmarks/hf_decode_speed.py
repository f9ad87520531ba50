"""Decoding side by side with Hugging Face transformers (PyTorch, eager, its dynamic
key/value cache) on the same weights: a random model saved by transformers, imported
through transformer.convert (the `tools.convert import` path), both decoding the same
inputs. Run by hand (torch and transformers are not CI requirements):

  pip install torch transformers
  python benchmarks/hf_decode_speed.py [--model=gpt2|llama] [--layers=6] [--width=512]
      [--heads=8] [--kv_heads=2] [--positions=256,1024] [--batches=1,8] [--prompt=8]
      [--tokens=128] [--threads=1] [--rounds=5]
  python benchmarks/hf_decode_speed.py --model=t5 [--batches=16] [--beam=4] [--src_len=24]
      [--threads=2] [--rounds=5]

Models (random weights, float32):
- gpt2: GPT-2-shaped (learned positions, LayerNorm, GELU, fused qkv), greedy continuation
  of random prompts;
- llama: Llama-shaped (rotary positions, grouped key/value heads: --kv_heads, SwiGLU,
  RMSNorm, untied output), greedy continuation;
- t5: T5 v1.0-shaped encoder-decoder (--layers each side, --width, relative position
  buckets, vocabulary 32128, n_positions as max_len), beam search (--beam) of --batches
  sources of random lengths up to --src_len, right-padded, for --tokens steps (random
  weights rarely end a beam, so both run every step): ours with eos_rule='top_k' and
  alpha 0, HF with num_beams and length_penalty=0 (the same search, see
  transformer.decoding.beam_search).

--threads sets both sides' threads (torch.set_num_threads; XLA's CPU thread pool through
XLA_FLAGS, before JAX starts). With 2 threads PyTorch's OpenMP workers spin while they wait,
so run it on an otherwise idle machine (under load its times are not comparable). Rounds are
interleaved (ours, then HF, per round) after one untimed call of each (compilation,
warm-up); prints tokens/s medians with p10-p90, the ratio ours/HF, and whether the
generated ids are identical.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def hf_model_for(args, positions):
  """A random transformers model of the asked shape, in eval mode."""
  import torch
  import transformers
  torch.manual_seed(0)
  if args.model == 'gpt2':
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=args.layers, n_embd=args.width, n_head=args.heads, n_positions=positions,
        vocab_size=args.vocab)).eval()
  if args.model == 'llama':
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=args.width, intermediate_size=args.width * 8 // 3,
        num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, max_position_embeddings=positions,
        vocab_size=args.vocab, tie_word_embeddings=False)).eval()
  return transformers.T5ForConditionalGeneration(transformers.T5Config(
      vocab_size=args.vocab, d_model=args.width, d_kv=args.width // args.heads,
      d_ff=4 * args.width, num_layers=args.layers, num_decoder_layers=args.layers,
      num_heads=args.heads, n_positions=positions, feed_forward_proj='relu',
      tie_word_embeddings=True, pad_token_id=0, eos_token_id=1,
      decoder_start_token_id=0)).eval()


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--model', default='gpt2', choices=('gpt2', 'llama', 't5'))
  p.add_argument('--layers', type=int, default=None, help='default: 6 (t5: 4 each side)')
  p.add_argument('--width', type=int, default=None, help='default: 512 (t5: 256)')
  p.add_argument('--heads', type=int, default=8)
  p.add_argument('--kv_heads', type=int, default=2, help='llama: key/value heads')
  p.add_argument('--vocab', type=int, default=None,
                 help='default: 50257 (gpt2), 32000 (llama), 32128 (t5)')
  p.add_argument('--positions', default=None, help='default: 256,1024 (t5: 512)')
  p.add_argument('--batches', default=None, help='default: 1,8 (t5: 16 sources)')
  p.add_argument('--prompt', type=int, default=8)
  p.add_argument('--tokens', type=int, default=None, help='default: 128 (t5: 64)')
  p.add_argument('--beam', type=int, default=4, help='t5: beam size')
  p.add_argument('--src_len', type=int, default=24, help='t5: longest source')
  p.add_argument('--threads', type=int, default=1)
  p.add_argument('--hf_device', default='cpu', help="HF's torch device ('cuda' on a GPU "
                 "machine, where ours runs on JAX's default device)")
  p.add_argument('--rounds', type=int, default=5)
  args = p.parse_args()
  t5 = args.model == 't5'
  defaults = dict(layers=4 if t5 else 6, width=256 if t5 else 512,
                  vocab={'gpt2': 50257, 'llama': 32000, 't5': 32128}[args.model],
                  positions='512' if t5 else '256,1024', batches='16' if t5 else '1,8',
                  tokens=64 if t5 else 128)
  for name, value in defaults.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
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
  what = (f'beam {args.beam} over {args.tokens} steps' if t5 else
          f'prompt {args.prompt}, {args.tokens} greedy tokens')
  print(f'{args.model}-shaped {args.layers} x {args.width}, {args.heads} heads, vocab '
        f'{args.vocab}, {what}, {args.threads} thread(s) each, {args.rounds} interleaved '
        f'rounds; torch {torch.__version__}, transformers {transformers.__version__}, jax '
        f'{jax.__version__}; ours on {jax.devices()[0].device_kind}, HF on {args.hf_device}')
  print(f'{"n_positions":>11s} {"batch":>5s} {"ours tok/s":>16s} {"HF tok/s":>16s} '
        f'{"ours/HF":>8s}  same ids')
  for positions in [int(x) for x in args.positions.split(',')]:
    hf_model = hf_model_for(args, positions)
    with tempfile.TemporaryDirectory() as tmp:
      hf_dir, work = os.path.join(tmp, 'hf'), os.path.join(tmp, 'work')
      hf_model.save_pretrained(hf_dir)
      cfg, _, _ = convert.import_hf(hf_dir, work)
      params = workdir_lib.restore_params(work, None, False)   # verified, as every reader
    cfg = cfg.replace(deterministic=True, dropout_rate=0.0)
    hf_model = hf_model.to(args.hf_device)
    dev = lambda a: torch.as_tensor(a, device=args.hf_device)
    for batch in [int(x) for x in args.batches.split(',')]:
      rng = np.random.default_rng(batch)
      if t5:   # sources of random lengths ending in </s>, right-padded
        lengths = rng.integers(args.src_len // 2, args.src_len + 1, size=batch)
        src = np.zeros((batch, args.src_len), np.int64)
        for r, n in enumerate(lengths):
          src[r, :n - 1] = rng.integers(2, args.vocab, size=n - 1)
          src[r, n - 1] = 1

        def ours():
          out = decoding.translate_beam(
              params, cfg, jax.numpy.asarray(src, jax.numpy.int32), beam_size=args.beam,
              alpha=0.0, extra_len=args.tokens - args.src_len, bos_id=0, eos_id=1,
              eos_rule='top_k').tokens
          return np.asarray(jax.block_until_ready(out))

        def hf():
          with torch.no_grad():
            out = hf_model.generate(dev(src), attention_mask=dev((src != 0).astype(np.int64)),
                                    num_beams=args.beam, length_penalty=0.0,
                                    max_new_tokens=args.tokens, do_sample=False)
          out = out[:, 1:].cpu().numpy()   # drop the decoder start token; pad to our width
          return np.pad(out, ((0, 0), (0, args.tokens - out.shape[1])))
      else:
        prompt = rng.integers(0, args.vocab, size=(batch, args.prompt))

        def ours():
          out = decoding.generate(params, cfg, jax.numpy.asarray(prompt, jax.numpy.int32),
                                  args.tokens, temperature=0.0)
          return np.asarray(jax.block_until_ready(out))

        def hf():
          with torch.no_grad():
            out = hf_model.generate(dev(prompt), max_new_tokens=args.tokens,
                                    min_new_tokens=args.tokens, do_sample=False,
                                    pad_token_id=0, eos_token_id=None,
                                    attention_mask=dev(np.ones(prompt.shape, np.int64)))
          return out[:, args.prompt:].cpu().numpy()

      a, b = ours(), hf()
      same = a.shape == b.shape and np.array_equal(a, b)
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
