"""Multi-device measurements (tests/multidevice_checks.py runs them for
tests/integration/test_multidevice.py).

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharding_checks.py OUT.json

XLA_FLAGS must be set before JAX is imported, and the rest of the suite runs
with one device, hence a separate process. This script only measures (losses,
parameter shardings, bytes per device, restored parameters) and writes them to
OUT.json, and the final parameters of the 'data_fsdp' run (the one-process
reference of the two-process test) to OUT.json.params.npz; the assertions are
in test_multidevice.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

# The repository, for configs/, transformer/ and tests/helpers.py: run as a script, this
# file has only tests/ on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import lm_shakespeare_char  # noqa: E402
from tests import helpers  # noqa: E402
from transformer import checkpoint as ckpt_lib  # noqa: E402
from transformer import engine, sharding  # noqa: E402

STEPS = 3
# Tiny, float32, reference attention, no dropout: deterministic, and heads (8),
# d_ff (64) and d_model (32) divide 8 devices. The character vocabulary (66)
# divides 2 but not 4 or 8.
MODEL = dict(d_model=32, num_heads=8, d_ff=64, num_decoder_layers=1, dtype='float32',
             attention_impl='einsum', dropout_rate=0.0)
TINY = dict(seq_len=16, batch_size=8, eval_batch_size=8, eval_max_batches=2, log_every_steps=1,
            eval_every_steps=1000, checkpoint_every_steps=1000, num_train_steps=STEPS,
            warmup_steps=2)
# Preset -> config.mesh overrides (data_fsdp: 2 x 4 instead of 1 process x 8 devices).
CASES = {'data': {}, 'fsdp': {}, 'tensor': {}, 'data_fsdp': {'fsdp': 4}, 'data_tensor': {},
         'fsdp_tensor': {}, 'pmap': {}}


def tiny_config(parallelism='data', **mesh):
  return helpers.tiny_config(lm_shakespeare_char, MODEL, **TINY, parallelism=parallelism,
                             **{f'mesh.{axis}': size for axis, size in mesh.items()})


def run_steps(exp, steps=STEPS):
  """Losses (objective / weight) of `steps` train steps from the initial state, and the state."""
  c = exp.config
  state = exp.init_state()
  losses = []
  with exp.context():
    for step in range(steps):
      batch = exp.task.data.train_batch(step, c.batch_size, c.seed, exp.data_shard)
      state, m = exp.train_step(state, exp.put_batch(batch))
      m = jax.device_get(m)
      losses.append(float(m['objective']) / float(m['weight']))
  return losses, state


def specs(tree):
  """{path: [mesh axes of each dimension]} of a tree of NamedSharded arrays."""
  out = {}
  for path, x in helpers.by_path(tree).items():
    spec = list(x.sharding.spec) + [None] * (x.ndim - len(x.sharding.spec))
    out[path] = [[] if s is None else list(s) if isinstance(s, tuple) else [s] for s in spec]
  return out


def param_like(opt_state, params):
  """The subtrees of the optimizer state shaped like the parameters (Adam's mu and nu)."""
  target = jax.tree.structure(params)
  found = []

  def visit(node):
    if jax.tree.structure(node) == target:
      found.append(node)
    elif isinstance(node, (tuple, list)):
      for child in node:
        visit(child)
  visit(opt_state)
  return found


def presets(out):
  """Losses, shardings and bytes per device of every preset vs one device.

  Returns {preset: (experiment, state)}.
  """
  ref = engine.Experiment(tiny_config(), None, devices=jax.devices()[:1])
  out['reference_losses'], ref_state = run_steps(ref)
  ref_params = jax.device_get(ref_state.params)
  abstract = jax.eval_shape(ref._init_state_boxed, jax.random.PRNGKey(0))
  is_box = lambda x: isinstance(x, nn.LogicallyPartitioned)
  out['logical_names'] = {p: list(b.names)
                          for p, b in helpers.by_path(abstract.params, is_box).items()}
  out['presets'] = {}
  states = {}
  for name, mesh in CASES.items():
    exp = engine.Experiment(tiny_config(name, **mesh), None)
    losses, state = run_steps(exp)
    params = jax.device_get(exp.unreplicate(state).params)
    rec = {'losses': losses, 'mesh': dict(exp.mesh.shape), 'data_shard': exp.data_shard,
           'max_param_diff': max(float(np.max(np.abs(a - b))) for a, b in
                                 zip(jax.tree.leaves(params), jax.tree.leaves(ref_params))),
           'param_devices': sorted({d.id for x in jax.tree.leaves(state.params)
                                    for d in x.sharding.device_set})}
    if not exp.pmap:
      rec['param_specs'] = specs(state.params)
      rec['opt_state_specs'] = [specs(t) for t in param_like(state.opt_state, state.params)]
      rec['state_bytes_device0'] = sharding.addressable_bytes(
          (state.params, state.opt_state), jax.devices()[0])
      rec['state_bytes_total'] = sum(x.nbytes for x in jax.tree.leaves(
          (state.params, state.opt_state)))
    out['presets'][name] = rec
    states[name] = (exp, state)
  return states


def checkpoint_across_meshes(out, writer, state):
  """Saves `state` (trained on a (fsdp 4, tensor 2) mesh); restores on (1, 1), (2, 4), pmap."""
  with tempfile.TemporaryDirectory() as d:
    ckpt = ckpt_lib.Checkpointer(d)
    ckpt.save(STEPS, state)
    ckpt.wait()
    saved = jax.device_get(state.params)
    out['checkpoint'] = {'written_mesh': dict(writer.mesh.shape),
                         'written_specs': specs(state.params)}
    targets = {
        '1x1': (tiny_config('data', data=1, fsdp=1, tensor=1), jax.devices()[:1]),
        '2x4': (tiny_config('fsdp_tensor', fsdp=2, tensor=4), None),
        'pmap': (tiny_config('pmap'), None),
    }
    for name, (config, devices) in targets.items():
      exp = engine.Experiment(config, None, devices=devices)
      restored = exp.unreplicate(exp.restore_or_init(ckpt))
      params = jax.device_get(restored.params)
      rec = {'step': int(restored.step), 'mesh': dict(exp.mesh.shape),
             'num_leaves': len(jax.tree.leaves(params)),
             'identical': all(np.array_equal(a, b) for a, b in
                              zip(jax.tree.leaves(params), jax.tree.leaves(saved))),
             'devices': sorted({d.id for x in jax.tree.leaves(restored.params)
                                for d in x.sharding.device_set})}
      if not exp.pmap:
        rec['specs'] = specs(restored.params)
      out['checkpoint'][name] = rec
    ckpt.close()


def main(out_path: str) -> None:
  out = {'device_count': jax.device_count()}
  states = presets(out)
  checkpoint_across_meshes(out, *states['fsdp_tensor'])
  with open(out_path, 'w') as f:
    json.dump(out, f, indent=1)
  params = jax.device_get(states['data_fsdp'][1].params)
  np.savez(out_path + '.params.npz', **helpers.by_path(params))


if __name__ == '__main__':
  main(sys.argv[1])
