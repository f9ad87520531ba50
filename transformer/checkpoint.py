"""Checkpoints through Orbax's CheckpointManager, verified by fingerprints.

Layout of a folder of checkpoints: <step>/{state,meta}. Orbax writes each checkpoint
into `<step>.orbax-checkpoint-tmp` and renames it when complete, so a process
killed at any moment leaves only whole checkpoints and temporaries behind; the
first save of a Checkpointer removes the temporaries. `meta` is JSON: the
step, what a human needs to know, and a fingerprint of every saved array.

Restoring verifies: a checkpoint that cannot be read, or whose arrays do not
match their fingerprints (silent corruption, which Orbax restores without
error), is bad. `restore()` then falls back to the newest good one with a
warning; a bad step asked for by number is an error. Bad steps above the one
restored are moved aside (`<step>.unreadable`, kept for inspection) at the
first save, so that training can write those steps again.

Which folders of a workdir hold checkpoints, and restoring from them, is
transformer/workdir.py's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from transformer import logs
from transformer.errors import CheckpointError  # noqa: F401  (re-exported)

TMP_SUFFIX = '.orbax-checkpoint-tmp'   # what Orbax 0.12 appends to a checkpoint being written
ASIDE_SUFFIX = '.unreadable'            # Orbax lists only numeric names: this hides a bad step
DELETED_DIR = 'deleted'                 # old steps renamed here, then removed

log = logging.getLogger('transformer')


# ---------------------------------------------------------------------------
# Fingerprints: two uint32 sums over an array's bits, each bit word weighted
# by its position. Integer sums wrap around exactly, so the result does not
# depend on the order of the reduction, hence not on the sharding: a sharded
# global array is fingerprinted where it lies, never gathered to one host.
# Every weight is odd, so changing any one element always changes both sums.
# ---------------------------------------------------------------------------

FINGERPRINT_CHUNK = 1 << 22   # elements summed at a time: bounds the transient memory


def _words(x: jax.Array) -> jax.Array:
  """x's bits (no PRNG keys: `_leaf_fingerprint` takes their data first) as a flat uint32
  vector in row-major order: 64-bit values as two words each, narrower ones widened."""
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  bits = x.dtype.itemsize * 8
  words = jax.lax.bitcast_convert_type(x, jnp.dtype(f'uint{bits}'))
  words = (jax.lax.bitcast_convert_type(words, jnp.uint32) if bits == 64
           else words.astype(jnp.uint32))
  return words.reshape(-1)


def _weighted_sums(words: jax.Array, index: jax.Array) -> jax.Array:
  w1 = index * jnp.uint32(2) + jnp.uint32(1)
  w2 = ((index * jnp.uint32(0x9E3779B1)) ^ (index >> 15)) | jnp.uint32(1)
  return jnp.stack([jnp.sum(words * w1, dtype=jnp.uint32), jnp.sum(words * w2, dtype=jnp.uint32)])


def _leaf_fingerprint(x: jax.Array, chunk: int = FINGERPRINT_CHUNK) -> jax.Array:
  """The two sums over x's words, word i (row-major position) weighted by 2i+1 and by an odd
  hash of i. Arrays of more than `chunk` elements are summed chunk by chunk (integer sums
  wrap exactly, so the value is the same), so no temporary the size of x is made."""
  x = jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
  n = x.size
  if n <= chunk:
    words = _words(x)
    return _weighted_sums(words, jax.lax.iota(jnp.uint32, words.size))
  flat = x.reshape(-1)
  per = 2 if x.dtype.itemsize == 8 else 1   # words per element
  steps = -(-n // chunk)

  def body(i, sums):
    begin = i * chunk
    start = jnp.minimum(begin, n - chunk)   # the last chunk overlaps the one before
    part = jax.lax.dynamic_slice(flat, (start,), (chunk,))
    local = jax.lax.iota(jnp.uint32, chunk * per)
    index = start.astype(jnp.uint32) * jnp.uint32(per) + local
    fresh = (local >= ((begin - start) * per).astype(jnp.uint32)).astype(jnp.uint32)
    return sums + _weighted_sums(_words(part) * fresh, index)

  return jax.lax.fori_loop(0, steps, body, jnp.zeros(2, jnp.uint32))


_jit_leaf_fingerprint = jax.jit(_leaf_fingerprint)


def fingerprints(tree: Any) -> dict[str, str]:
  """{leaf path: 16 hex digits} for every array of `tree` (multi-host: the same on every host).

  One array at a time: the transient memory is a few times the largest array, not the whole
  tree's (a host-memory tree, e.g. a converted checkpoint, is never copied whole)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path):
          '%08x%08x' % tuple(np.asarray(jax.device_get(_jit_leaf_fingerprint(v))))
          for path, v in flat}


def _holds_files(path: str) -> bool:
  try:
    return bool(os.listdir(path))
  except OSError:   # removed meanwhile (by a writer's max_to_keep), or not listable
    return False


def checkpoint_steps(directory: str) -> list[int]:
  """The steps saved in a folder of checkpoints: numeric sub-folders that hold files.

  The one definition of "has checkpoints" (an empty numeric folder, a save in
  progress `<step>.orbax-checkpoint-tmp` and a set-aside `<step>.unreadable`
  hold none).
  """
  try:
    names = os.listdir(directory)
  except OSError:
    return []
  return sorted(int(n) for n in names if n.isdigit() and _holds_files(os.path.join(directory, n)))


def _normal_key(key: str) -> str:
  """A fingerprint's tree path as 'params/decoder/...', from jax's keystr of any container."""
  return '/'.join(a or b or c for a, b, c in re.findall(r"\['([^']*)'\]|\.(\w+)|\[(\d+)\]", key))


def _on_every_host(ok: bool) -> bool:
  """True if `ok` on every process: all hosts must agree on which step they restore."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.array(ok))))


def _why(e: BaseException) -> str:
  """The root cause in one line, without TensorStore's spec dump."""
  while e.__cause__ is not None:
    e = e.__cause__
  text = str(e).split(' [tensorstore_spec')[0].split(' See full TensorStore')[0].strip()
  kind = '' if isinstance(e, CheckpointError) else f'{type(e).__name__}: '   # ours: plain words
  return f'{kind}{text.splitlines()[0] if text else ""}'[:300]


# ---------------------------------------------------------------------------
# The checkpointer.
# ---------------------------------------------------------------------------

def _is_disk_full(e: BaseException | None) -> bool:
  """Whether `e` (or what caused it) is a write that found no space left on the device."""
  seen = 0
  while e is not None and seen < 20:
    if getattr(e, 'errno', None) == errno.ENOSPC or 'No space left on device' in str(e):
      return True
    e, seen = e.__cause__ or e.__context__, seen + 1
  return False


def _path_name(path) -> str:
  """'params/decoder/layer_0/...' for a tree path, whether its steps are keys, attributes or indices."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k)))) for k in path)


class Checkpointer:

  def __init__(self, directory: str, keep: int = 5, async_save: bool = False,
               allow_unverified: bool = False):
    """`allow_unverified`: restore arrays that have no saved fingerprint (a checkpoint
    written before fingerprints were stored, or one whose record was lost) instead of
    treating them as damaged (config.allow_unverified_checkpoints)."""
    self.directory = os.path.abspath(directory)
    self.allow_unverified = allow_unverified
    # Old steps beyond `keep` are renamed into DELETED_DIR (one atomic rename) and removed
    # from there: a kill during the removal leaves no half-deleted step among the kept ones,
    # only leftovers in DELETED_DIR, which the next writer clears.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save,
                                           todelete_subdir=DELETED_DIR)
    # A failed read or write leaves others running in the background that print
    # tracebacks, some before the failure is raised: from before Orbax touches anything,
    # those go to the DEBUG log (logs.py). Every read and write here is this object's.
    logs.quiet_abandoned_io()
    self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._bad: dict[int, str] = {}   # steps above the one restore() fell back to -> why
    self._writing = False            # readers (eval.py) never touch the directory
    self._saved: set[int] = set()    # steps this writer saved
    self._in_flight: int | None = None   # the last step saved (maybe still being written)

  def _path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  @property
  def steps(self) -> list[int]:
    return checkpoint_steps(self.directory)

  def _holds_files(self, step: int) -> bool:
    return _holds_files(self._path(step))

  def latest_step(self) -> int | None:
    steps = self.steps
    return steps[-1] if steps else None

  def clear_leftovers(self) -> None:
    """Removes what killed processes left: temporaries of a save that did not finish and
    old steps whose removal did not finish. Only the owner of the directory calls this
    (training, under the workdir's lock), once at start and before its first save, so that
    leftovers go even when the run has nothing left to save."""
    if jax.process_index() != 0:
      return
    self._clear_deleted()
    self._remove_temporaries('left by a save that did not finish')

  def _remove_temporaries(self, why: str) -> None:
    """Removes every `<step>.orbax-checkpoint-tmp` folder (a save that did not finish)."""
    for name in sorted(os.listdir(self.directory)):
      if TMP_SUFFIX in name:
        path = os.path.join(self.directory, name)
        log.info('Removing %s, %s', path, why)
        shutil.rmtree(path, ignore_errors=True)

  def _prepare_to_write(self) -> None:
    """Clears what would block saving: temporaries of a killed save, empty and bad steps."""
    self._writing = True
    self.clear_leftovers()
    if jax.process_index() == 0:
      for step in self._manager.all_steps():
        if not self._holds_files(step):   # empty (or unlistable): nothing readable is lost
          shutil.rmtree(self._path(step), ignore_errors=True)
          if os.path.exists(self._path(step)):
            self._move_aside(step)
        elif step in self._bad:
          self._move_aside(step)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices('transformer.checkpoint.prepare_to_write')
    self._manager.reload()

  def _move_aside(self, step: int, why: str = 'unreadable') -> None:
    """Renames an unreadable step out of Orbax's sight (`<step>.unreadable`, kept for
    inspection) so that the step can be written again; a CheckpointError when it cannot be."""
    aside = self._path(step) + ASIDE_SUFFIX
    n = 1
    while os.path.exists(aside):   # an earlier bad copy of this step is kept too
      n += 1
      aside = f'{self._path(step)}{ASIDE_SUFFIX}{n}'
    try:
      os.rename(self._path(step), aside)
    except OSError as e:
      raise CheckpointError(
          f'{self._path(step)} ({why}) cannot be moved aside ({e.strerror}), so step {step} '
          'cannot be saved: remove it or fix its permissions, then resume') from None
    log.warning('Moved checkpoint step %d (%s) to %s so that it can be written again', step,
                why, aside)

  def save(self, step: int, state: Any, meta: dict | None = None) -> None:
    if not self._writing:
      self._prepare_to_write()
    elif jax.process_index() == 0:
      self._clear_deleted()   # the steps the previous saves retired
    if step in self._manager.all_steps():
      if step in self._saved:
        return   # saved already by this writer (the last step can also be a periodic one)
      # A step this writer did not save and that is still there (it could not be read nor
      # moved aside): writing must succeed or fail loudly, never be skipped by its name.
      self._move_aside(step, why='not written by this run')
      self._manager.reload()
    self._check_space(step, state)
    meta = dict(meta or {}, step=step, fingerprints=fingerprints(state))
    self.wait()   # the previous save (Orbax waits for it anyway): its errors name its step
    self._in_flight = step
    with self._disk_full_is_one_error():
      # force: Orbax would skip any step below the newest on disk, e.g. after a fallback.
      self._manager.save(step, force=True, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    self._saved.add(step)

  @contextlib.contextmanager
  def _disk_full_is_one_error(self):
    """A disk that fills up during a save (after the free-space check passed: another
    writer took the space) is one CheckpointError naming the step, with the partial save
    removed, instead of Orbax's background tracebacks and exit status 1."""
    try:
      yield
    except Exception as e:
      if not _is_disk_full(e):
        raise
      step = self._in_flight
      if jax.process_index() == 0:
        self._remove_temporaries('the save that found the disk full')
      kept = [s for s in self.steps if s != step]
      raise CheckpointError(
          f'The disk filled up while checkpoint {step} was being written to {self.directory} '
          f'(No space left on device): its partial files were removed, and the checkpoints '
          f'kept so far, {kept}, stay as they are. Free some space, then run again to '
          'resume.') from None

  def _check_space(self, step: int, state: Any) -> None:
    """A save that cannot fit is one clear error before anything is written (a full disk
    mid-save ended runs with hundreds of lines of Orbax and asyncio tracebacks)."""
    need = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
               for x in jax.tree.leaves(state) if hasattr(x, 'shape'))
    need = int(need * 1.05) + (1 << 20)   # Orbax's metadata and file overhead
    free = shutil.disk_usage(self.directory).free
    if free < need:
      raise CheckpointError(
          f'Not enough disk space to save checkpoint {step} in {self.directory}: it needs '
          f'about {need / 2**20:.1f} MiB and {free / 2**20:.1f} MiB are free. Free some space '
          f'(the checkpoints kept so far, {self.steps}, stay as they are), then run again to '
          'resume.')

  def wait(self) -> None:
    with self._disk_full_is_one_error():
      self._manager.wait_until_finished()

  def _read(self, abstract_state: Any, step: int) -> tuple[Any, dict | None, str | None]:
    """(state, meta, None), or (None, None, why the checkpoint at `step` is bad)."""
    state = meta = problem = None
    try:
      if not self._holds_files(step):
        raise CheckpointError('empty directory: no checkpoint was written into it')
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
      state, meta = restored.state, restored.meta
      if not isinstance(meta, dict):
        raise CheckpointError(f'meta is {type(meta).__name__}, not a JSON object')
      # By array name, whatever container held it: a state restored as a plain dict
      # (transformer.workdir.restore without a model) names '.params' as "['params']".
      saved = {_normal_key(p): v for p, v in (meta.get('fingerprints') or {}).items()}
      now = fingerprints(state)
      wrong = [p for p, v in now.items() if saved.get(_normal_key(p), v) != v]
      if wrong:
        more = f' (and {len(wrong) - 1} more)' if len(wrong) > 1 else ''
        raise CheckpointError(f'array {wrong[0]}{more} does not match the fingerprint saved '
                              'with it: the data is corrupt')
      # An array that cannot be verified is damaged too (unless the user accepts it):
      # a lost fingerprint record must not let flipped bits through.
      unverified = [p for p in now if _normal_key(p) not in saved]
      if unverified and self.allow_unverified:
        log.warning('Checkpoint step %d: %d array(s) have no saved fingerprint; restored '
                    'unverified (allow_unverified_checkpoints=True)', step, len(unverified))
      elif unverified:
        what = ('no fingerprints were saved with it' if not saved else
                f'array {unverified[0]}' + (f' (and {len(unverified) - 1} more)'
                                            if len(unverified) > 1 else '') +
                ' has no saved fingerprint')
        raise CheckpointError(f'{what}: it cannot be verified (to use it anyway, set '
                              '--config.allow_unverified_checkpoints=True)')
    except Exception as e:  # Orbax raises many types for missing, truncated or garbled files
      problem = _why(e)
    if not _on_every_host(problem is None):
      problem = problem or 'unreadable on another host'
    return (None, None, problem) if problem else (state, meta, None)

  def shape_mismatches(self, abstract_state: Any, step: int) -> list[str]:
    """'name: saved shape S, this model T' for each array whose shape differs (or is missing).

    Read from the checkpoint's metadata only; [] when the metadata cannot be read
    (a damaged checkpoint is diagnosed by the restore itself).
    """
    try:
      with ocp.StandardCheckpointer() as reader:
        meta = reader.metadata(os.path.join(self._path(step), 'state'))
      saved = {_path_name(p): tuple(m.shape) for p, m in
               jax.tree_util.tree_flatten_with_path(dict(getattr(meta, 'item_metadata', meta)))[0]
               if hasattr(m, 'shape')}
    except Exception:   # noqa: BLE001  (unreadable metadata: left to the restore)
      return []
    want = {_path_name(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
    out = []
    for name, shape in want.items():
      if name not in saved:
        out.append(f'{name}: not in the checkpoint, {shape} in this model')
      elif saved[name] != shape:
        out.append(f'{name}: {saved[name]} in the checkpoint, {shape} in this model')
    out += [f'{name}: {shape} in the checkpoint, not in this model'
            for name, shape in saved.items() if name not in want]
    return out

  def _check_model(self, abstract_state: Any, step: int) -> None:
    """A checkpoint of another model is one clear error, not a corrupt step to fall back from."""
    wrong = self.shape_mismatches(abstract_state, step)
    if wrong and all(w.startswith('opt_state') for w in wrong):
      raise CheckpointError(
          f'The checkpoint {self._path(step)} holds the state of another optimizer (e.g. '
          f'{wrong[0]}): the optimizer settings changed since it was written (optimizer, '
          'grad_clip_norm, weight decay). Resume with the settings that wrote it, or start a '
          'new run from its weights: --workdir=NEW '
          f'--config.init_from={os.path.dirname(self.directory)}')
    if wrong:
      more = f'\n  ... and {len(wrong) - 8} more' if len(wrong) > 8 else ''
      raise CheckpointError(
          f'The checkpoint {self._path(step)} was written by another model: its arrays differ '
          'from this model\'s (name: saved shape, expected shape):\n  ' +
          '\n  '.join(wrong[:8]) + more + '\nRun with the config that trained it (eval.py '
          'reads WORKDIR/config.json when --config is left out), or train in a new --workdir.')

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
    """Restores `step` (default: the newest good one) into the shapes/shardings of `abstract_state`.

    Raises CheckpointError if `step` is bad, or if no checkpoint is good.
    """
    available = sorted(self._manager.all_steps())
    if step is not None:
      if step not in available:
        raise CheckpointError(f'No checkpoint for step {step} in {self.directory}; '
                              f'available steps: {self.steps}')
      self._check_model(abstract_state, step)
      state, meta, problem = self._read(abstract_state, step)
      if problem:
        raise CheckpointError(f'Checkpoint {self._path(step)} cannot be restored: {problem}')
      return state, meta
    if not self.steps:
      raise CheckpointError(f'No checkpoint found in {self.directory}')
    problems, mismatched, matched = {}, [], False
    for s in reversed(available):
      # A step whose tree metadata does not fit this model while an older one does is
      # damaged (a leaf lost from its _METADATA), not a checkpoint of another model.
      wrong = self.shape_mismatches(abstract_state, s)
      if wrong:
        mismatched.append(s)
        problem = f'its tree metadata does not match this model ({wrong[0]})'
      else:
        matched = True
        state, meta, problem = self._read(abstract_state, s)
        if problem is None:
          self._bad.update(problems)   # set aside at the first save, to be written again
          return state, meta
      problems[s] = problem
      log.warning('Checkpoint step %d in %s cannot be restored (%s); trying the one before.',
                  s, self.directory, problem)
    if mismatched and not matched:   # no step fits: they are another model's (or optimizer's)
      self._check_model(abstract_state, mismatched[0])
    raise CheckpointError(
        f'Checkpoints in {self.directory} cannot be restored; none is readable:\n' +
        '\n'.join(f'  step {s}: {why}' for s, why in sorted(problems.items())) +
        '\nIf they were written by a different model or config, pass the config that wrote them.')

  def _clear_deleted(self) -> None:
    """Removes the steps Orbax set aside for deletion (and what a killed removal left). The
    folder itself stays: Orbax's background thread may be renaming a step into it."""
    path = os.path.join(self.directory, DELETED_DIR)
    for name in os.listdir(path) if os.path.isdir(path) else ():
      shutil.rmtree(os.path.join(path, name), ignore_errors=True)

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._manager.close()
    if self._writing and jax.process_index() == 0:
      self._clear_deleted()


def read_meta(directory: str, step: int) -> dict:
  """The JSON meta saved with checkpoint `step` of `directory` ({} when unreadable)."""
  try:
    with open(os.path.join(directory, str(step), 'meta', 'metadata')) as f:
      meta = json.load(f)
  except (OSError, ValueError):
    return {}
  return meta if isinstance(meta, dict) else {}
