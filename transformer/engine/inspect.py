"""What a run would be, before it runs: train.py --print_config and --dry_run.

Neither writes into the workdir: the task is built in a scratch folder
(`scratch_task`: a vocabulary the workdir already holds is copied there and
reused; one a run would train is trained there and thrown away), once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from typing import Any, Iterator

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from transformer import sharding, tasks, validation
from transformer.engine.experiment import Experiment


@contextlib.contextmanager
def scratch_task(config: ml_collections.ConfigDict, workdir: str | None) -> Iterator[tasks.Task]:
  """The task of `config`, built in a temporary folder holding copies of WORKDIR's vocabularies."""
  with tempfile.TemporaryDirectory(prefix='transformer_inspect_') as scratch:
    if workdir and os.path.isdir(workdir):
      for name in os.listdir(workdir):
        if name.endswith(('.model', '.vocab')):
          shutil.copy(os.path.join(workdir, name), scratch)
    yield tasks.make_task(config, scratch)


def describe(config: ml_collections.ConfigDict, task: tasks.Task) -> dict[str, Any]:
  """What a run of `config` would train: the model config after presets, parameters, FLOPs.

  `task`: built by `scratch_task`. No parameters are made: shapes come from
  jax.eval_shape.
  """
  validation.validate(config)
  shapes = jax.eval_shape(lambda: task.model(train=False).init(jax.random.PRNGKey(0),
                                                               *task.init_inputs()))
  params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.meta.unbox(shapes['params'])))
  batch = task.data.train_batch(0, config.batch_size, config.seed)
  return {'task': task, 'model_config': task.model_cfg, 'parameters': params,
          'train_flops_per_step': task.train_flops(batch),
          'batch_shapes': {k: tuple(np.shape(v)) for k, v in batch.items()}}


def dry_run(config: ml_collections.ConfigDict, task: tasks.Task,
            steps: int = 3) -> dict[str, Any]:
  """Builds the experiment of `task` (from `scratch_task`), compiles the train step for every
  batch shape of its first `steps` batches, then times those steps; writes nothing.

  Bucketed data (translation) gives batches of several shapes, each its own
  compilation: they are all compiled first, so the step time is a step's and
  not a compilation's (it was reported as 24-29 s for Multi30k's 3.4 s step).
  Returns the compile seconds (all shapes, one step each) and how many shapes,
  the mean seconds of the timed steps, and the bytes of parameters and
  optimizer state on this process's first device.
  """
  exp = Experiment(config, None, task=task)
  state = exp.init_state()
  plain = exp.unreplicate(state)
  first = jax.local_devices()[0]
  out = {'params_bytes_per_device': sharding.addressable_bytes(plain.params, first),
         'opt_state_bytes_per_device': sharding.addressable_bytes(plain.opt_state, first)}
  batches = [exp.put_batch(exp.task.data.train_batch(i, config.batch_size, config.seed,
                                                     exp.data_shard)) for i in range(steps)]
  shape = lambda b: tuple(sorted((k, tuple(v.shape)) for k, v in b.items()))  # noqa: E731
  first_of_shape = list({shape(b): b for b in reversed(batches)}.values())
  with exp.context():
    t0 = time.perf_counter()
    for batch in first_of_shape:   # one compilation per shape
      state, metrics = exp.train_step(state, batch)
      jax.block_until_ready(metrics)
    out['compile_seconds'] = time.perf_counter() - t0
    out['compiled_shapes'] = len(first_of_shape)
    t0 = time.perf_counter()
    for batch in batches:
      state, metrics = exp.train_step(state, batch)
    jax.block_until_ready(metrics)
    out['step_seconds'] = (time.perf_counter() - t0) / steps
  out['loss'] = exp.task.summarize(jax.device_get(
      {k: v for k, v in metrics.items() if k not in ('learning_rate', 'grad_norm',
                                                      'bad_step')}))['loss']
  return out
