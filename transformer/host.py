"""Host-process settings that change step time, applied explicitly by the entry points.

`tune_allocator()`: every execution of a compiled XLA CPU program allocates
its temporaries as one block (48 MB for the Shakespeare recipe's train step)
and frees it at the end. glibc's malloc serves blocks above its mmap
threshold (dynamic, at most 32 MB) with a fresh mmap, and gives them back
with munmap, so every step page-faults its whole working set in again: about
5-9x slower elementwise ops in the forward pass, and a cliff in step time
between batch 6 and batch 12 of that recipe (benchmarks/RESULTS.md,
2026-12-02). Raising the mmap and trim thresholds keeps freed blocks in the
heap for the next step. The cost is that the process keeps its peak heap
instead of returning it to the OS, which a training process does anyway.
The thresholds alone hold only for the main arena: XLA's worker threads
allocate from arenas of their own, which serve any block larger than an
arena's 64 MB with a fresh mmap whatever the threshold. A train step of 940 MB
of temporaries (d_model 512, 6 layers, batch 8 x 256) page-faulted 230,000
times per step (0.5 s of system time in a 2.1 s step) until malloc was held to
one arena (M_ARENA_MAX=1): then 23,000-115,000 faults and 0.09-0.23 s per
step, varying from run to run (0 in one run), so some of the temporaries still
come back as fresh pages (benchmarks/step_probe.py; benchmarks/RESULTS.md,
2026-12-04 afternoon).

It changes the whole process's allocator, so the library never calls it: the
entry points do (train.py, eval.py, the tools and benchmarks/), before any
work. Linux with glibc only (elsewhere it does nothing); set
TRANSFORMER_TUNE_MALLOC=0 to leave malloc alone.

`use_compilation_cache()`: JAX's persistent compilation cache, so that a run,
a resume, eval.py and generate.py reuse what an earlier process compiled
(Multi30k compiles about 11 bucket shapes at 16-25 s each; benchmarks/
RESULTS.md has the first-step time cold and warm). The folder is
$TRANSFORMER_COMPILATION_CACHE, by default ~/.cache/transformer/jax (under
$XDG_CACHE_HOME when set); TRANSFORMER_COMPILATION_CACHE=off turns it off.
JAX's own JAX_COMPILATION_CACHE_DIR, when set, wins. Only compilations
of at least a second are kept (JAX's default threshold).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger('transformer')

M_TRIM_THRESHOLD = -1      # glibc malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 1 << 30   # blocks up to 1 GiB come from the heap, and are reused
TRIM_THRESHOLD = (1 << 31) - 1

_done: bool | None = None


CACHE_OFF = ('', '0', 'off', 'false', 'no', 'none')


def compilation_cache_dir() -> str | None:
  """Where the persistent compilation cache goes (see above); None when turned off."""
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return os.environ['JAX_COMPILATION_CACHE_DIR']
  default = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache'),
                         'transformer', 'jax')
  value = os.environ.get('TRANSFORMER_COMPILATION_CACHE', default)
  if value.strip().lower() in CACHE_OFF:
    return None
  return os.path.abspath(os.path.expanduser(value))


def use_compilation_cache() -> str | None:
  """Turns on JAX's persistent compilation cache in `compilation_cache_dir()`; its path."""
  import jax
  path = compilation_cache_dir()
  if path is not None and not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    jax.config.update('jax_compilation_cache_dir', path)
    log.debug('JAX compilation cache: %s', path)
  return path


def tune_allocator() -> bool:
  """Raises glibc's mmap/trim thresholds and keeps one malloc arena, once per process; True
  if all three are set."""
  global _done
  if _done is not None:
    return _done
  _done = False
  if os.environ.get('TRANSFORMER_TUNE_MALLOC', '1') == '0' or not sys.platform.startswith('linux'):
    return _done
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    mallopt = libc.mallopt
  except (OSError, AttributeError):   # not glibc (musl has no mallopt)
    return _done
  mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
  _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
      mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, 1))
  if _done:
    log.debug('malloc: mmap threshold %d, trim threshold %d, one arena', MMAP_THRESHOLD,
              TRIM_THRESHOLD)
  return _done
