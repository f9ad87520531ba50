"""Multi-host start-up through jax.distributed.

`initialize()` joins the processes of a multi-host job when the environment
says there is one (JAX_COORDINATOR_ADDRESS with JAX_NUM_PROCESSES and
JAX_PROCESS_ID, or a cluster JAX detects itself: SLURM, TPU pods, ...), and
does nothing for a single process.
"""

from __future__ import annotations

import logging
import os

import jax

log = logging.getLogger('transformer')


def initialize() -> None:
  addr = os.environ.get('JAX_COORDINATOR_ADDRESS')
  if addr:
    jax.distributed.initialize(coordinator_address=addr,
                               num_processes=int(os.environ['JAX_NUM_PROCESSES']),
                               process_id=int(os.environ['JAX_PROCESS_ID']))
  elif any(k in os.environ for k in ('SLURM_JOB_ID', 'TPU_WORKER_HOSTNAMES',
                                     'MEGASCALE_COORDINATOR_ADDRESS')):
    jax.distributed.initialize()
  else:
    return
  log.info('Process %d of %d, %d local / %d global devices', jax.process_index(),
           jax.process_count(), jax.local_device_count(), jax.device_count())
