"""Progress of long non-training work (decoding a test set, classifying a folder)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger('transformer')


class Progress:
  """`progress(done)` logs 'LABEL done/total UNIT, rate UNIT/s, ETA' about every `every`
  seconds while work remains."""

  def __init__(self, total: int, unit: str, label: str = '', every: float = 10.0):
    self.total, self.unit, self.label, self.every = total, unit, label, every
    self.t0 = self.last = time.perf_counter()

  def __call__(self, done: int) -> None:
    now = time.perf_counter()
    if now - self.last < self.every or done >= self.total:
      return
    self.last = now
    rate = done / max(now - self.t0, 1e-9)
    log.info('%s%d/%d %s, %.1f %s/s, ETA %.0f s', self.label, done, self.total, self.unit, rate,
             self.unit, (self.total - done) / max(rate, 1e-9))
