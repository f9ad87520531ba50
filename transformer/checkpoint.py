"""Checkpoints through Orbax's CheckpointManager, and checkpoint averaging.

Layout: WORKDIR/checkpoints/<step>/{state,meta}. Orbax writes each checkpoint
into a temporary folder and renames it when complete, so a process killed at
any moment leaves only whole checkpoints behind (a partial one is ignored and
cleaned up). `meta` is JSON: the step and what a human needs to know.

Averaged checkpoints (`average_checkpoints`) go to WORKDIR/checkpoints_avg and
are read by eval.py with `--checkpoint=avg`.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

CHECKPOINT_DIR = 'checkpoints'
AVERAGED_DIR = 'checkpoints_avg'


class CheckpointError(RuntimeError):
  """A checkpoint is missing or cannot be restored; the message says which and why."""


class Checkpointer:

  def __init__(self, directory: str, keep: int = 5, async_save: bool = False):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  @property
  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict | None = None) -> None:
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta or {}, step=step))))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
    """Restores `step` (default: latest) into the shapes/shardings of `abstract_state`."""
    steps = self.steps
    if step is None:
      if not steps:
        raise CheckpointError(f'No checkpoint found in {self.directory}')
      step = steps[-1]
    if step not in steps:
      raise CheckpointError(f'No checkpoint for step {step} in {self.directory}; '
                            f'available steps: {steps}')
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for unreadable or mismatched data
      raise CheckpointError(
          f'Checkpoint {os.path.join(self.directory, str(step))} cannot be restored: '
          f'{type(e).__name__}: {e}\nIt may be corrupt or written by a different model/config. '
          'Delete it to resume from an earlier step, or pass the config that wrote it.') from e
    return restored.state, restored.meta

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def average_checkpoints(workdir: str, abstract_state: Any, num: int = 5,
                        output_dir: str | None = None) -> tuple[int, list[int]]:
  """Averages the params of the last `num` checkpoints into a new checkpoint.

  The result keeps the rest of the latest state (step, optimizer state) and is
  saved at the latest step under WORKDIR/checkpoints_avg. Returns
  (step, averaged steps).
  """
  ckpt = Checkpointer(os.path.join(workdir, CHECKPOINT_DIR), keep=10**6)
  steps = ckpt.steps[-num:]
  if not steps:
    raise CheckpointError(f'No checkpoints to average in {ckpt.directory}')
  total, latest = None, None
  for step in steps:
    state, _ = ckpt.restore(abstract_state, step)
    params = jax.tree.map(lambda x: x.astype(jnp.float32), state.params)
    total = params if total is None else jax.tree.map(jnp.add, total, params)
    latest = state
  avg = jax.tree.map(lambda t, p: (t / len(steps)).astype(p.dtype), total, latest.params)
  out = Checkpointer(output_dir or os.path.join(workdir, AVERAGED_DIR), keep=10**6)
  out.save(steps[-1], latest.replace(params=avg), meta={'averaged_steps': steps})
  out.close()
  ckpt.close()
  return steps[-1], steps
