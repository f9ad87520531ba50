"""Console logging and metric formatting shared by the engine, the tools and the entry points.

The project logs through the 'transformer' logger; `setup_logging` (called by
entry points, never at import) shows its INFO lines and other libraries' only
from WARNING up.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from absl import logging as absl_logging

log = logging.getLogger('transformer')


# Warnings other libraries give on every normal restore: not news to the user.
QUIET = ('Metadata file does not exist',   # Orbax: checkpoints without _CHECKPOINT_METADATA
         )


def _not_quiet(record: logging.LogRecord) -> bool:
  return not str(record.msg).startswith(QUIET)


def setup_logging(stream=None) -> None:
  """Progress lines from this project on `stream` (default stdout; generate.py: stderr, its
  stdout carries the outputs); other libraries' chatter only at WARNING, without the
  warnings every normal restore gives (QUIET)."""
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(message)s',
                      stream=stream or sys.stdout, force=True)
  for handler in logging.getLogger().handlers:
    handler.addFilter(_not_quiet)
  log.setLevel(logging.INFO)


def format_metrics(metrics: dict[str, Any]) -> str:
  """`name value` pairs on one line: floats to 4 significant decimals, the rest as they are."""
  return '  '.join(f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}'
                   for k, v in metrics.items())


def format_eta(seconds: float) -> str:
  """h:mm:ss."""
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}:{m:02d}:{s:02d}'
