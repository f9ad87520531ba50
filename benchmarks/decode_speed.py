"""Decoding speed: translation sentences/s, and cached against recomputed LM decoding.

Translation (an EncoderDecoder config), from a trained workdir:

  python benchmarks/decode_speed.py --config=configs/translate_multi30k.py \
      --workdir=runs/multi30k [--methods=greedy,beam] [--repeats=2]

restores the latest checkpoint (random parameters without --workdir: the
speed is then not representative, as an untrained model rarely stops early),
translates config.eval_split whole with each method exactly as eval.py does
(batches of decoding.batch_size sources sorted by length), once untimed to
compile every batch shape, then `--repeats` more times timed; prints the
median seconds, sentences/s, output pieces/s, and BLEU of each method, each
twice: with the cross-attention keys/values projected from the encoder output
at every step (model.cache_cross_kv=False, the behaviour before 2026-12-02)
and projected once per source into the cache (the default), with the
speed-up and whether the translations are identical.

Language model (a DecoderLM config):

  python benchmarks/decode_speed.py --config=configs/lm_shakespeare_char.py \
      --config.model.max_len=320 --new_tokens=256

times greedy generation of --new_tokens tokens from `--lm_batch` one-token
prompts (random parameters unless --workdir is given; the model needs more
than --new_tokens positions), with the key/value cache against two cache-less
baselines: recomputing the growing prefix at every step (a jitted forward pass
over exactly the t tokens so far, one compilation per length, all compiled in
the untimed pass: the fair baseline, and the one the speed-up is quoted
against) and a forward pass over a fixed max-length buffer at every step
(simpler to jit, but it does the full length's work from the first token, so a
speed-up against it is overstated). It checks that all three give the same
tokens and prints tokens/s and the speed-ups. With --ragged=K it also times K
prompts of different lengths (1 to 4K tokens) generated as one left-padded
batch against one prompt at a time (same tokens checked).
"""

import dataclasses
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

flags.DEFINE_string('workdir', '', 'Trained workdir (latest checkpoint); empty: random init.')
flags.DEFINE_list('methods', ['greedy', 'beam'], 'Translation: decoding methods to time.')
flags.DEFINE_integer('repeats', 2, 'Timed passes (after one untimed compiling pass).')
flags.DEFINE_integer('new_tokens', 256, 'LM: tokens generated per prompt.')
flags.DEFINE_integer('lm_batch', 1, 'LM: prompts decoded together.')
flags.DEFINE_integer('ragged', 0, 'LM: also time this many prompts of different lengths, '
                     'batched (left-padded) against one at a time.')
flags.DEFINE_string('json_out', '', 'Optional path to write the rows as JSON.')
config_flags.DEFINE_config_file('config', 'configs/translate_multi30k.py', 'Experiment config.',
                                lock_config=False)
FLAGS = flags.FLAGS


def _experiment(config):
  from transformer import engine, inference
  if FLAGS.workdir:   # the verified restore; an error when the workdir holds no checkpoint
    return inference.load_trained(config, FLAGS.workdir)
  exp = engine.Experiment(config, None)
  return exp, exp.init_state()


def translation(config) -> list[dict]:
  from transformer import bleu
  exp, state = _experiment(config)
  task, split = exp.task, config.eval_split
  sources, refs = task.data.texts(split)
  rows = []
  base_cfg = task.model_cfg
  for method in FLAGS.methods:
    task.settings = dataclasses.replace(task.settings, decoding=dataclasses.replace(
        task.settings.decoding, method=method))
    outputs = {}
    for cross_cache in (False, True):     # before / after caching the cross-attention K/V
      task.model_cfg = base_cfg.replace(cache_cross_kv=cross_cache)
      hyps = task.translate_split(state.params, split)            # compiles every shape
      times = []
      for _ in range(FLAGS.repeats):
        t0 = time.perf_counter()
        hyps = task.translate_split(state.params, split)
        times.append(time.perf_counter() - t0)
      sec = statistics.median(times)
      outputs[cross_cache] = hyps
      pieces = sum(len(task.data.tokenizer.encode(h)) + 1 for h in hyps)
      name = method if method == 'greedy' else f'beam {task.settings.decoding.beam_size}'
      rows.append({'method': f"{name}, cross K/V {'cached' if cross_cache else 'per step'}",
                   'sentences': len(sources), 'seconds': sec,
                   'sentences_per_s': len(sources) / sec, 'pieces_per_s': pieces / sec,
                   'bleu': bleu.corpus_bleu(hyps, refs).score,
                   'tokenized_bleu_lc': bleu.tokenized_bleu(hyps, refs, lowercase=True).score})
    rows[-1]['speedup_vs_per_step'] = rows[-2]['seconds'] / rows[-1]['seconds']
    rows[-1]['same_translations'] = outputs[False] == outputs[True]
  task.model_cfg = base_cfg
  return rows


def language_model(config) -> list[dict]:
  from transformer import decoding, models
  exp, state = _experiment(config)
  cfg = exp.task.model_cfg.replace(deterministic=True)
  params, n = state.params, FLAGS.new_tokens
  if n + 1 > cfg.max_len:
    raise app.UsageError(f'--new_tokens={n} needs max_len > {n}; the model has {cfg.max_len} '
                         'positions (set --config.seq_len or --config.model.max_len)')
  prompt = jnp.ones((FLAGS.lm_batch, 1), jnp.int32)
  model = models.DecoderLM(cfg)

  @jax.jit
  def recompute_fixed(params, prompt):
    """Greedy decoding without a cache: a full forward pass over the whole buffer per token."""
    buf = jnp.zeros((prompt.shape[0], n + 1), jnp.int32).at[:, :1].set(prompt)

    def body(t, buf):
      logits = model.apply({'params': params}, buf)
      token = jnp.argmax(logits[:, t], axis=-1).astype(jnp.int32)
      return buf.at[:, t + 1].set(token)
    return jax.lax.fori_loop(0, n, body, buf)[:, 1:]

  @jax.jit
  def extend(params, prefix):
    """prefix [B, t] -> [B, t + 1] with the greedy next token (compiled once per t)."""
    token = jnp.argmax(model.apply({'params': params}, prefix)[:, -1], axis=-1)
    return jnp.concatenate([prefix, token[:, None].astype(jnp.int32)], axis=1)

  def recompute_prefix(params, prompt):
    """Greedy decoding without a cache over the growing prefix (t tokens at step t)."""
    buf = prompt
    for _ in range(n):
      buf = extend(params, buf)
    return buf[:, 1:]

  cached = lambda params, prompt: decoding.generate(params, cfg, prompt, n, temperature=0.0)
  rows, outs = [], {}
  for name, fn in (('cached', cached), ('recompute growing prefix', recompute_prefix),
                   ('recompute fixed buffer', recompute_fixed)):
    outs[name] = np.asarray(fn(params, prompt))                  # compile
    times = []
    for _ in range(max(FLAGS.repeats, 3)):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(params, prompt))
      times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    rows.append({'method': f'greedy, {name}', 'new_tokens': n, 'batch': FLAGS.lm_batch,
                 'seconds': sec, 'tokens_per_s': n * FLAGS.lm_batch / sec})
  if FLAGS.ragged:
    rows += ragged_rows(params, cfg, n)
  rows[0]['speedup_vs_recompute'] = rows[1]['seconds'] / rows[0]['seconds']
  rows[0]['speedup_vs_fixed_buffer'] = rows[2]['seconds'] / rows[0]['seconds']
  rows[0]['same_tokens'] = all(np.array_equal(outs['cached'], o) for o in outs.values())
  return rows


def ragged_rows(params, cfg, n: int) -> list[dict]:
  """Prompts of --ragged different lengths (1 .. 4 * --ragged tokens): one left-padded
  batch (decoding.pad_left) against each prompt alone, same tokens checked."""
  from transformer import decoding
  rng = np.random.default_rng(0)
  count = FLAGS.ragged
  lengths = rng.integers(1, 4 * count + 1, size=count)
  prompts = [rng.integers(1, cfg.vocab_size, size=int(k)).tolist() for k in lengths]
  tokens, left_pad = decoding.pad_left(prompts)
  width = tokens.shape[1]
  if width + n - 1 > cfg.max_len:
    raise app.UsageError(f'ragged prompts of up to {width} tokens + {n} new need max_len >= '
                         f'{width + n - 1}; the model has {cfg.max_len}')
  batched = lambda: decoding.generate(params, cfg, tokens, n, temperature=0.0, left_pad=left_pad)
  alone = lambda: [decoding.generate(params, cfg, jnp.asarray([p], jnp.int32), n,
                                     temperature=0.0) for p in prompts]
  rows, outs = [], {}
  for name, fn in (('ragged batch', batched), ('one prompt at a time', alone)):
    outs[name] = np.asarray(jax.block_until_ready(fn())).reshape(count, n)   # compile
    times = []
    for _ in range(max(FLAGS.repeats, 3)):
      t0 = time.perf_counter()
      jax.block_until_ready(fn())
      times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    rows.append({'method': f'greedy, cached, {name} (prompts of {lengths.min()}-'
                           f'{lengths.max()} tokens)', 'new_tokens': n, 'batch': count,
                 'seconds': sec, 'tokens_per_s': n * count / sec})
  rows[0]['speedup_vs_one_at_a_time'] = rows[1]['seconds'] / rows[0]['seconds']
  rows[0]['same_tokens'] = bool(np.array_equal(outs['ragged batch'],
                                               outs['one prompt at a time']))
  return rows


def main(argv):
  del argv
  from transformer import host, logs
  host.tune_allocator()
  logs.setup_logging()
  config = FLAGS.config
  rows = translation(config) if config.task == 'translation' else language_model(config)
  print(f'device: {jax.devices()[0].device_kind} x {jax.device_count()}')
  for r in rows:
    print('  '.join(f'{k}={v:,.2f}' if isinstance(v, float) else f'{k}={v}' for k, v in r.items()))
  if FLAGS.json_out:
    import json
    with open(FLAGS.json_out, 'w') as f:
      json.dump({'device': jax.devices()[0].device_kind, 'rows': rows}, f, indent=2)


if __name__ == '__main__':
  app.run(main)
