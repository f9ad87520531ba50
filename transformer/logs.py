"""Console logging and metric formatting shared by the engine, the tools and the entry points.

The project logs through the 'transformer' logger; `setup_logging` (called by
entry points, never at import) shows its INFO lines and other libraries' only
from WARNING up.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
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


# ---------------------------------------------------------------------------
# Checkpoint reads and writes abandoned by a failure. When Orbax fails to read
# one array of a damaged checkpoint (or to write one on a full disk) it raises
# at once and closes its event loop while TensorStore is still reading or
# writing the others; those finish on background threads and print "Event
# loop is closed" and "Exception ignored in <coroutine ...>" tracebacks
# (hundreds of lines, some before the failure is even raised, some at
# interpreter shutdown). They say nothing the one warning or error line does
# not: from the first Checkpointer on (before any restore or save), errors
# with exactly these signatures are logged at DEBUG instead of printed.
# Anything else still goes to Python's own hooks.
# ---------------------------------------------------------------------------

_IO_LIBRARIES = (os.sep + 'orbax' + os.sep, os.sep + 'tensorstore' + os.sep)
_ABANDONED_IN = _IO_LIBRARIES + (os.sep + 'asyncio' + os.sep,)
_hooks_installed = False


def _is_abandoned_io(exc: BaseException | None, where: Any = None) -> bool:
  if exc is None:
    return False
  text = str(exc)
  if isinstance(exc, RuntimeError) and text == 'Event loop is closed':
    return True
  if 'Encountered error while reading array index' in text or '[tensorstore_spec' in text:
    return True   # a read's error, raised again where nobody waits for it any more
  code = getattr(where, 'cr_code', None)   # a coroutine of Orbax's, never awaited to the end
  if code is not None and any(d in code.co_filename for d in _IO_LIBRARIES):
    return True
  files = []
  tb = exc.__traceback__
  while tb is not None:
    files.append(tb.tb_frame.f_code.co_filename)
    tb = tb.tb_next
  return bool(files) and all(any(d in f for d in _ABANDONED_IN) for f in files)


def _debug(what: str, exc: BaseException) -> None:
  try:
    log.debug('after a failed checkpoint read or write, %s: %s: %s', what,
              type(exc).__name__, exc)
  except Exception:  # noqa: BLE001  (at interpreter shutdown logging may be gone)
    pass


def quiet_abandoned_io() -> None:
  """From now on, errors of checkpoint reads and writes that a failure abandoned go to the
  DEBUG log instead of stderr (see above). Installed once, by the first Checkpointer."""
  global _hooks_installed
  if _hooks_installed:
    return
  _hooks_installed = True
  # Orbax's coroutines that a failure left unawaited, reported when they are collected.
  warnings.filterwarnings('ignore', message=r"coroutine '.*' was never awaited",
                          category=RuntimeWarning, module=r'orbax\.')
  unraisable, excepthook, thread_hook = sys.unraisablehook, sys.excepthook, threading.excepthook

  def on_unraisable(u):
    if _is_abandoned_io(u.exc_value, u.object):
      _debug(f'in {u.object!r}', u.exc_value)
    else:
      unraisable(u)

  def on_exception(kind, value, tb):   # C++ callbacks (TensorStore futures) print through this
    if _is_abandoned_io(value):
      _debug('in a callback', value)
    else:
      excepthook(kind, value, tb)

  def on_thread_exception(args):
    if _is_abandoned_io(args.exc_value):
      _debug(f'in {args.thread}', args.exc_value)
    else:
      thread_hook(args)

  def on_asyncio_record(record: logging.LogRecord) -> bool:   # "Task exception was never
    exc = record.exc_info[1] if record.exc_info else None       # retrieved" and the like
    if _is_abandoned_io(exc):
      _debug('in an asyncio task', exc)
      return False
    return True

  sys.unraisablehook, sys.excepthook, threading.excepthook = (
      on_unraisable, on_exception, on_thread_exception)
  logging.getLogger('asyncio').addFilter(on_asyncio_record)


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
