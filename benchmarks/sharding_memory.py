"""Per-device memory of the parameters and optimizer state under each parallelism preset.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python benchmarks/sharding_memory.py [--config=configs/wmt14_ende_base.py] \
      [--presets=data,fsdp,tensor,fsdp_tensor] [--vocab_size=37000] [--config.FIELD=VALUE ...]

Builds the train state of the config's model (default: the paper's base
translation model, shared 37,000-token vocabulary, Adam) exactly as training
does (`engine.Experiment.init_state`: created directly in its shardings) on
every device of this process, then reports for device 0: the bytes of the
parameter and optimizer-state shards it holds (sum of addressable shard
bytes), their share of one full replica, and the allocator's own count where
the device reports one (`memory_stats()`; CPU devices do not). No data is read:
the model needs none to be built. Activations and the train step's
temporaries are not included.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

flags.DEFINE_list('presets', ['data', 'fsdp', 'tensor', 'fsdp_tensor'],
                  'config.parallelism values to measure.')
flags.DEFINE_integer('vocab_size', 0, 'Vocabulary size (0: config.vocab_size).')
flags.DEFINE_string('json_out', '', 'Optional path to write the results as JSON.')
config_flags.DEFINE_config_file('config', 'configs/wmt14_ende_base.py', 'Experiment config.',
                                lock_config=False)
FLAGS = flags.FLAGS


def model_only_task(config, vocab_size):
  """The config's task without its data: model, model config and init inputs only."""
  import jax.numpy as jnp
  from transformer import models, tasks
  from transformer.experiment_config import build_model_config

  class ModelOnly(tasks.Task):
    def __init__(self):
      super().__init__(config, None)
      self.model_cfg = build_model_config(config, vocab_size=vocab_size)

    def model(self, train):
      cfg = self.model_cfg.replace(deterministic=not train)
      if config.task == 'translation':
        return models.EncoderDecoder(cfg)
      if config.task == 'lm':
        return models.DecoderLM(cfg)
      return models.ViT(cfg)

    def init_inputs(self):
      if config.task == 'classification':
        c = self.model_cfg
        return (jnp.ones((1, c.image_size, c.image_size, c.num_channels), jnp.float32),)
      x = jnp.ones((1, 8), jnp.int32)
      return (x, x) if config.task == 'translation' else (x,)

  return ModelOnly()


def measure(config, preset: str, vocab_size: int) -> dict:
  import jax
  from transformer import engine, sharding
  c = config.copy_and_resolve_references()
  c.parallelism = preset
  exp = engine.Experiment(c, None, task=model_only_task(c, vocab_size))
  state = exp.unreplicate(exp.init_state())
  jax.block_until_ready(state)
  dev = jax.devices()[0]
  params = sharding.addressable_bytes(state.params, dev)
  opt = sharding.addressable_bytes(state.opt_state, dev)
  full = sum(x.nbytes for x in jax.tree.leaves((state.params, state.opt_state)))
  if exp.pmap:   # unreplicated, yet each device still holds a whole copy
    params = sum(x.nbytes for x in jax.tree.leaves(state.params))
    opt = full - params
  stats = dev.memory_stats() or {}
  out = {'preset': preset, 'mesh': 'x'.join(str(v) for v in exp.mesh.shape.values()),
         'params': sum(x.size for x in jax.tree.leaves(state.params)),
         'param_bytes_dev0': params, 'opt_bytes_dev0': opt, 'total_bytes_dev0': params + opt,
         'replica_bytes': full, 'share_of_replica': (params + opt) / full,
         'allocator_bytes_in_use_dev0': stats.get('bytes_in_use')}
  del state, exp
  return out


def main(argv):
  del argv
  import jax
  from transformer import host, logs
  host.tune_allocator()
  logs.setup_logging()
  config = FLAGS.config
  vocab = FLAGS.vocab_size or config.vocab_size
  rows = [measure(config, p, vocab) for p in FLAGS.presets]
  mib = lambda b: f'{b / 2**20:,.1f}'
  print(f'{config.task} model, vocabulary {vocab}, optimizer {config.optimizer}, '
        f'{rows[0]["params"]:,} parameters; {jax.device_count()} {jax.devices()[0].platform} '
        'devices; MiB on device 0 (mesh data x fsdp x tensor)')
  header = ('preset', 'mesh', 'params MiB', 'opt state MiB', 'total MiB', 'share of replica',
            'allocator MiB')
  print(' | '.join(header))
  for r in rows:
    alloc = r['allocator_bytes_in_use_dev0']
    print(' | '.join([r['preset'], r['mesh'], mib(r['param_bytes_dev0']), mib(r['opt_bytes_dev0']),
                      mib(r['total_bytes_dev0']), f'{r["share_of_replica"]:.3f}',
                      mib(alloc) if alloc is not None else 'n/a']))
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(rows, f, indent=1)


if __name__ == '__main__':
  app.run(main)
