"""Multi-host start-up through jax.distributed.

`initialize()` joins the processes of a multi-host job when the environment
says there is one (JAX_COORDINATOR_ADDRESS with JAX_NUM_PROCESSES and
JAX_PROCESS_ID, or a cluster JAX detects itself: SLURM, TPU pods, ...), and
does nothing for a single process. It must run before anything else touches
JAX's devices. Afterwards only process 0 logs progress (INFO); the others log
warnings and errors. Launch recipes: docs/SHARDING.md.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

from transformer.data.tokenizers import Processes

log = logging.getLogger('transformer')


def initialize() -> None:
  addr = os.environ.get('JAX_COORDINATOR_ADDRESS')
  if addr:
    missing = [k for k in ('JAX_NUM_PROCESSES', 'JAX_PROCESS_ID') if k not in os.environ]
    if missing:
      raise RuntimeError(f'JAX_COORDINATOR_ADDRESS={addr} is set but {missing} are not: set '
                         'all three on every process (docs/SHARDING.md), or unset it.')
    jax.distributed.initialize(coordinator_address=addr,
                               num_processes=int(os.environ['JAX_NUM_PROCESSES']),
                               process_id=int(os.environ['JAX_PROCESS_ID']))
  elif any(k in os.environ for k in ('SLURM_JOB_ID', 'TPU_WORKER_HOSTNAMES',
                                     'MEGASCALE_COORDINATOR_ADDRESS', 'OMPI_COMM_WORLD_SIZE')):
    jax.distributed.initialize()
  else:
    return
  log.info('Process %d of %d, %d local / %d global devices', jax.process_index(),
           jax.process_count(), jax.local_device_count(), jax.device_count())
  if jax.process_index() != 0:
    log.setLevel(logging.WARNING)


def processes() -> Processes:
  """This job's processes for the data layer: process 0 writes shared files (a SentencePiece
  model), every process waits for it at a barrier."""
  return Processes(writer=jax.process_index() == 0, count=jax.process_count(),
                   wait=multihost_utils.sync_global_devices)


# Work shared by the processes of a job (decoding a split): each process takes every
# count-th item, computes it with a full copy of the parameters, and the results are
# combined so that every process holds all of them. With one process these are no-ops.

def full_copy(tree):
  """`tree` (e.g. parameters sharded over every host's devices) whole on this process."""
  if jax.process_count() == 1:
    return tree
  return multihost_utils.process_allgather(tree, tiled=True)


def my_share(items: list) -> list:
  """This process's items of a list split over the processes (every count-th)."""
  return items[jax.process_index()::jax.process_count()]


def combine(array):
  """The element-wise max over the processes of `array`, where each process filled its own
  share and left -1 elsewhere: every process then holds every share."""
  if jax.process_count() == 1:
    return array
  return np.max(multihost_utils.process_allgather(array), axis=0)
