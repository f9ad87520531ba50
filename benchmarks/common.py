"""Shared by the benchmark scripts: printing a result dict and writing it as JSON; the small
random DecoderLM that the decoding benchmarks time (its flags and its parameters)."""

import argparse
import json


def print_results(res: dict, json_out: str = '') -> None:
  """Prints `res` as aligned `key  value` lines (floats to 3 decimals); writes JSON if asked."""
  width = max(len(k) for k in res)
  for k, v in res.items():
    print(f'{k:<{width}}  {v:,.3f}' if isinstance(v, float) else f'{k:<{width}}  {v}')
  if json_out:
    with open(json_out, 'w') as f:
      json.dump(res, f, indent=2)


def decoder_lm_flags(rounds: int) -> argparse.ArgumentParser:
  """A parser with the small DecoderLM's flags (--layers, --width, --batch, --tokens) and
  --rounds (interleaved timing rounds); a benchmark adds its own."""
  p = argparse.ArgumentParser()
  p.add_argument('--layers', type=int, default=2)
  p.add_argument('--width', type=int, default=128)
  p.add_argument('--batch', type=int, default=4)
  p.add_argument('--tokens', type=int, default=96)
  p.add_argument('--rounds', type=int, default=rounds)
  return p


def random_decoder_lm(args, max_len: int, prompt):
  """(TransformerConfig, random params) of a DecoderLM of args.layers x args.width (4 heads,
  d_ff 4 x width, vocabulary 256, no dropout) holding max_len positions."""
  import jax

  from transformer import models
  from transformer.model_config import TransformerConfig
  cfg = TransformerConfig(vocab_size=256, d_model=args.width, num_heads=4, d_ff=4 * args.width,
                          num_encoder_layers=0, num_decoder_layers=args.layers,
                          max_len=max_len, deterministic=True, dropout_rate=0.0)
  return cfg, models.DecoderLM(cfg).init(jax.random.PRNGKey(0), prompt)['params']
