"""Gradient accumulation, pmap and MFU on 8 forced CPU devices (tests/multidevice_checks.py runs
it for tests/integration/test_multidevice.py).

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/scale_checks.py OUT.json WORKDIR

XLA_FLAGS must be set before JAX is imported, hence a subprocess. This script
only measures and writes OUT.json; the assertions are in test_multidevice.py.

- gradients: the mean gradient the optimizer sees (`Experiment.gradients`) on two
  real Multi30k batches (length buckets, ragged padding, so the devices' token
  counts differ) for jit with grad_accum_steps 1 and 2 and pmap with 1 and 2,
  each against one full-batch, token-weighted gradient computed on one device;
  and how far a mean of per-device means would be from it (the error the
  comparison must be able to see).
- collectives: all-gathers and collective-permutes in the compiled train step
  with grad_accum_steps 1 and 2, with the current micro-batch split and with
  the former contiguous one (`x.reshape(k, B // k, ...)`).
- mfu: benchmarks/train_speed.measure with a stub peak for the CPU.
"""

from __future__ import annotations

import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import translate_multi30k  # noqa: E402
from tests import helpers  # noqa: E402
from transformer import engine, flops, tasks  # noqa: E402

# Deterministic (no dropout), float32, reference attention; label smoothing on,
# as in the recipe. 16-row granularity: 8 devices x 2 micro-batches.
TINY = {
    'model.d_model': 32, 'model.num_heads': 2, 'model.d_ff': 64, 'model.num_encoder_layers': 1,
    'model.num_decoder_layers': 1, 'model.dtype': 'float32', 'model.attention_impl': 'einsum',
    'model.dropout_rate': 0.0, 'vocab_size': 300, 'spm_max_sentences': 4000, 'seq_len': 24,
    'tokens_per_batch': 768, 'bucket_boundaries': (12, 24), 'batch_size': 16,
    'eval_batch_size': 16, 'warmup_steps': 2, 'label_smoothing': 0.1,
}
CASES = {'jit_k1': ('data', 1), 'jit_k2': ('data', 2), 'pmap_k1': ('pmap', 1),
         'pmap_k2': ('pmap', 2)}
COLLECTIVES = ('all-gather', 'collective-permute', 'all-reduce')


def flat(tree) -> dict[str, np.ndarray]:
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): np.asarray(v, np.float64)
          for path, v in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]}


def max_diff(a: dict, b: dict) -> float:
  return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def count_collectives(hlo: str) -> dict[str, int]:
  """Collective ops in compiled HLO text (async pairs counted once, by their -start)."""
  return {op: len(re.findall(rf'= \S+ {op}(?:-start)?\(', hlo)) for op in COLLECTIVES}


def contiguous_split(batch, k):
  """The former micro-batch split: micro-batch i is rows [i B/k, (i + 1) B/k)."""
  return jax.tree.map(lambda x: x.reshape((k, x.shape[0] // k) + x.shape[1:]), batch)


def main(out_path: str, workdir: str) -> None:
  assert jax.device_count() == 8, 'run with XLA_FLAGS=--xla_force_host_platform_device_count=8'
  config = helpers.tiny_config(translate_multi30k, **TINY)
  task = tasks.make_task(config, workdir)   # one vocabulary and data source for every case
  batches = [task.data.train_batch(s, config.batch_size, config.seed) for s in range(2)]
  results = {'batches': [], 'gradients': {}, 'collectives': {}}

  exps = {}
  for name, (parallelism, k) in CASES.items():
    c = config.copy_and_resolve_references()
    c.parallelism, c.grad_accum_steps = parallelism, k
    exps[name] = engine.Experiment(c, workdir, task=task)
  plain = exps['jit_k1'].unreplicate(exps['jit_k1'].init_state())
  params = jax.device_get(plain.params)

  # The reference: one device, the whole batch, gradient of (summed loss / summed weight).
  def mean_loss(p, batch):
    sums = task.loss_sums(p, batch, jax.random.PRNGKey(0), train=True)
    return sums['objective'] / sums['weight']
  ref_grad = jax.jit(jax.grad(mean_loss))

  for batch in batches:
    weights = batch['weights'].reshape(8, -1).sum(axis=1)   # tokens per device
    results['batches'].append({'shape': list(batch['inputs'].shape),
                               'tokens_per_device': weights.tolist()})
    ref = flat(ref_grad(params, batch))
    # What a mean of per-device means would give (the regression the test must catch).
    chunks = [jax.tree.map(lambda x: x.reshape((8, -1) + x.shape[1:])[d], batch) for d in range(8)]
    mean_of_means = jax.tree.map(lambda *g: sum(g) / 8, *[ref_grad(params, ch) for ch in chunks])
    results['gradients'].setdefault('mean_of_means', []).append(max_diff(flat(mean_of_means), ref))
    for name, exp in exps.items():
      state = exp.replicate(plain)
      with exp.context():
        grads, _ = exp.gradients(state, exp.put_batch(batch))
      results['gradients'].setdefault(name, []).append(max_diff(flat(grads), ref))
    results['gradients'].setdefault('max_abs_reference', []).append(
        max(float(np.max(np.abs(v))) for v in ref.values()))

  # Collectives in the compiled data-parallel train step.
  for split in ('strided', 'contiguous'):
    for k in (1, 2):
      c = config.copy_and_resolve_references()
      c.grad_accum_steps = k
      exp = engine.Experiment(c, workdir, task=task)
      if split == 'contiguous':
        exp._micro_batches = contiguous_split
      state = exp.init_state()
      with exp.context():
        hlo = exp.train_step.lower(state, exp.put_batch(batches[0])).compile().as_text()
      results['collectives'][f'{split}_k{k}'] = count_collectives(hlo)

  # MFU over all 8 devices with a stub CPU peak.
  import train_speed
  flops.PEAK_FLOPS[('cpu', 'float32')] = 1e9
  c = config.copy_and_resolve_references()
  res = train_speed.measure(c, steps=3, warmup=1, evaluate=False, workdir=workdir)
  results['mfu'] = {k: res[k] for k in ('mfu', 'model_tflops_per_s', 'num_devices')}
  results['mfu']['stub_peak'] = 1e9

  with open(out_path, 'w') as f:
    json.dump(results, f, indent=1)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2])
