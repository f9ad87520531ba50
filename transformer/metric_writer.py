"""Metrics to DIR/metrics.jsonl (one JSON object per line) and TensorBoard.

Only process 0 writes. Each record has at least `step` and `split`. The file
is strict JSON: a non-finite value (a NaN loss) is written as null.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

import jax
import numpy as np

from transformer import workdir as workdir_lib


def _plain(v):
  """A JSON value: arrays to numbers or lists, and non-finite floats to null (strict JSON)."""
  if isinstance(v, (np.generic, np.ndarray)) or hasattr(v, 'dtype'):
    v = np.asarray(v)
    v = v.item() if v.ndim == 0 else v.tolist()
  if isinstance(v, float) and not math.isfinite(v):
    return None
  if isinstance(v, list):
    return [_plain(x) for x in v]
  return v


class MetricWriter:
  """Appends records to WORKDIR/metrics.jsonl and TensorBoard (process 0).

  `resume_step`: training (re)starts after this step. The records a run wrote
  for later steps before it was interrupted are dropped from metrics.jsonl
  (rewritten atomically) and purged from TensorBoard, so every reader sees one
  record per (step, split) once the resumed run writes those steps again.
  eval.py's records (they name their `checkpoint`) are kept.
  """

  def __init__(self, workdir: str, enabled: bool | None = None,
               resume_step: int | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = os.path.join(workdir, workdir_lib.METRICS)
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      if resume_step is not None:
        self._drop_after(resume_step)
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, workdir_lib.TENSORBOARD),
                               purge_step=None if resume_step is None else resume_step + 1)

  def _drop_after(self, step: int) -> None:
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      try:
        record = json.loads(line)
      except ValueError:
        continue   # a line cut short by a kill
      if record.get('step', 0) <= step or 'checkpoint' in record:
        kept.append(line if line.endswith('\n') else line + '\n')
    if len(kept) != len(lines):
      with open(self.path + '.tmp', 'w') as f:
        f.writelines(kept)
      os.replace(self.path + '.tmp', self.path)

  def write(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    record = {'step': int(step), 'split': split, 'time': time.time()}
    record.update({k: _plain(v) for k, v in metrics.items()})
    with open(self.path, 'a') as f:
      f.write(json.dumps(record, allow_nan=False) + '\n')
    for k, v in metrics.items():   # TensorBoard takes NaN and inf as they are
      if hasattr(v, 'dtype') and np.ndim(v) == 0:
        v = np.asarray(v).item()
      if isinstance(v, (int, float)):
        self._tb.add_scalar(f'{split}/{k}', v, int(step))
    self._tb.flush()

  def write_text(self, step: int, tag: str, text: str) -> None:
    if self.enabled:
      self._tb.add_text(tag, text, int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, workdir_lib.METRICS)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
