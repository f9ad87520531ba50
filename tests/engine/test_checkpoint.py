"""Checkpoints survive damage: fallback to the newest good step, fingerprints, stray folders,
leftovers of a killed save, and exact resume after a SIGKILL during an asynchronous save."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests import helpers
from tools import fault_campaign
from transformer import checkpoint as ckpt_lib
from transformer import workdir as workdir_lib

REPO = helpers.REPO
# Orbax's reader threads may report a failed read after restore() has raised it: noise.
pytestmark = pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')


@flax.struct.dataclass
class State:   # the shape of engine.TrainState, as average_checkpoints needs it
  step: jax.Array
  params: dict


def make_state(seed: int) -> State:
  rng = np.random.default_rng(seed)
  return State(step=jnp.int32(seed), params={
      'w': jnp.asarray(rng.normal(size=(32, 16)), jnp.float32),
      'b': jnp.asarray(rng.normal(size=(16,)), jnp.bfloat16),
      'i': jnp.asarray(rng.integers(0, 99, size=(7,)), jnp.int32)})


ABSTRACT = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        make_state(0))


def equal(a, b) -> bool:
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def warnings_of_ours(caplog):
  return [r.getMessage() for r in caplog.records
          if r.name == 'transformer' and r.levelno >= logging.WARNING]


def save_steps(directory, steps, async_save=False):
  c = ckpt_lib.Checkpointer(str(directory), keep=100, async_save=async_save)
  for s in steps:
    c.save(s, make_state(s))
  c.close()


# The kinds of damage are the fault campaign's (tools/fault_campaign.py).
DAMAGE = fault_campaign.DAMAGE


@pytest.fixture(scope='module')
def good_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('good') / 'checkpoints'
  save_steps(d, [1, 2])
  return d


def damaged_copy(good_dir, tmp_path, kinds):
  """A copy of `good_dir` with {step: kind of damage} applied."""
  d = tmp_path / 'checkpoints'
  shutil.copytree(good_dir, d)
  for step, kind in kinds.items():
    DAMAGE[kind](str(d / str(step)))
  return d


@pytest.mark.parametrize('kind', list(DAMAGE))
def test_damaged_latest_falls_back_or_restores_intact(kind, good_dir, tmp_path, caplog):
  d = damaged_copy(good_dir, tmp_path, {2: kind})
  c = ckpt_lib.Checkpointer(str(d))
  with caplog.at_level(logging.WARNING, logger='transformer'):
    state, meta = c.restore(ABSTRACT)
  if equal(state, make_state(2)):   # the damage did not touch what restoring reads
    assert meta['step'] == 2 and not warnings_of_ours(caplog)
    return
  assert equal(state, make_state(1)) and meta['step'] == 1, 'neither step 2 nor step 1 restored'
  assert 'Checkpoint step 2 in' in caplog.text and 'cannot be restored (' in caplog.text
  # Asked for by number, a bad step is an error naming it: no silent substitute.
  with pytest.raises(ckpt_lib.CheckpointError, match=f'{d}/2 cannot be restored: .+') as e:
    c.restore(ABSTRACT, step=2)
  assert 'delet' not in str(e.value).lower()


def test_flipped_bits_restore_silently_through_orbax_but_fail_the_fingerprint(
    good_dir, tmp_path, caplog):
  d = damaged_copy(good_dir, tmp_path, {2: 'data files: a few flipped bits'})
  with ocp.StandardCheckpointer() as raw:   # Orbax alone: wrong numbers, no error
    read = raw.restore(d / '2' / 'state', ABSTRACT)
  assert not np.array_equal(read.params['w'], make_state(2).params['w'])
  with caplog.at_level(logging.WARNING, logger='transformer'):
    state, _ = ckpt_lib.Checkpointer(str(d)).restore(ABSTRACT)
  assert equal(state, make_state(1))
  assert "array .params['w'] does not match the fingerprint" in caplog.text


def test_no_readable_checkpoint_is_one_error_listing_each_step(good_dir, tmp_path):
  d = damaged_copy(good_dir, tmp_path, {2: 'data files garbage', 1: 'meta JSON deleted'})
  with pytest.raises(ckpt_lib.CheckpointError) as e:
    ckpt_lib.Checkpointer(str(d)).restore(ABSTRACT)
  msg = str(e.value)
  assert 'cannot be restored; none is readable' in msg and str(d) in msg
  assert '\n  step 1: FileNotFoundError' in msg and '\n  step 2: ValueError' in msg
  assert 'delet' not in msg.lower()
  assert e.value.__cause__ is None and 'Traceback' not in msg


@pytest.mark.parametrize('lost', ['the whole record', "one array's"])
def test_an_unverifiable_checkpoint_is_damaged_unless_the_user_accepts_it(
    lost, good_dir, tmp_path, caplog):
  """The fault campaign: with the fingerprint record removed and bytes flipped in the data,
  restore skipped the check (at DEBUG) and restored NaNs, silently."""
  d = damaged_copy(good_dir, tmp_path, {2: 'data files: a few flipped bits'})
  meta_file = d / '2' / 'meta' / 'metadata'
  meta = json.loads(meta_file.read_text())
  assert set(meta['fingerprints']) == {".params['b']", ".params['i']", ".params['w']", '.step'}
  if lost == 'the whole record':
    del meta['fingerprints']   # as written before fingerprints were stored, or lost since
  else:
    del meta['fingerprints'][".params['w']"]
  meta_file.write_text(json.dumps(meta))
  with caplog.at_level(logging.WARNING, logger='transformer'):
    state, meta = ckpt_lib.Checkpointer(str(d)).restore(ABSTRACT)
  assert equal(state, make_state(1)) and meta['step'] == 1
  assert 'Checkpoint step 2' in caplog.text and 'cannot be verified' in caplog.text
  with pytest.raises(ckpt_lib.CheckpointError, match='allow_unverified_checkpoints=True'):
    ckpt_lib.Checkpointer(str(d)).restore(ABSTRACT, step=2)
  # Accepted explicitly: step 2 as it is on disk, with a warning.
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger='transformer'):
    state, meta = ckpt_lib.Checkpointer(str(d), allow_unverified=True).restore(ABSTRACT)
  assert meta['step'] == 2 and not equal(state, make_state(2))   # the flipped bits
  assert 'restored unverified' in caplog.text


# ---------------------------------------------------------------------------
# Fingerprints.
# ---------------------------------------------------------------------------

def test_fingerprints_are_deterministic_and_see_one_changed_element():
  rng = np.random.default_rng(0)
  tree = {'f32': jnp.asarray(rng.normal(size=(5, 6)), jnp.float32),
          'bf16': jnp.asarray(rng.normal(size=(30,)), jnp.bfloat16),
          'i32': jnp.asarray(rng.integers(-9, 9, size=(3, 10)), jnp.int32),
          'bool': jnp.asarray(rng.integers(0, 2, size=(30,)), bool)}
  fp = ckpt_lib.fingerprints(tree)
  assert fp == ckpt_lib.fingerprints(jax.tree.map(np.asarray, tree))   # host copy: same value
  assert len(set(fp.values())) == len(fp)
  for name, x in tree.items():
    flat = np.asarray(x).reshape(-1)
    for k in (0, 17, flat.size - 1):
      changed = flat.copy()
      changed[k] = ~changed[k] if name == 'bool' else changed[k] + 1
      other = ckpt_lib.fingerprints({name: jnp.asarray(changed.reshape(x.shape))})
      assert other[f"['{name}']"] != fp[f"['{name}']"], (name, k)
    swapped = flat.copy()
    swapped[[3, 4]] = flat[[4, 3]]
    if flat[3] != flat[4]:   # same values, other positions
      assert ckpt_lib.fingerprints({name: swapped.reshape(x.shape)})[f"['{name}']"] != \
          fp[f"['{name}']"], name


def test_fingerprints_do_not_depend_on_the_sharding():
  """On 4 CPU devices (a subprocess: the device count is fixed at JAX start): one device,
  a 2x2 mesh and a row split give the same fingerprints, 64-bit dtypes included."""
  script = textwrap.dedent("""
      import json, jax, numpy as np
      jax.config.update('jax_enable_x64', True)
      from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
      from transformer.checkpoint import fingerprints
      rng = np.random.default_rng(0)
      tree = {n: rng.normal(size=(8, 12)).astype(n) for n in ('float32', 'float16', 'float64')}
      tree.update(int32=rng.integers(-99, 99, (8, 12)).astype('int32'),
                  int64=rng.integers(-2**40, 2**40, (8, 12)),
                  bfloat16=jax.numpy.asarray(rng.normal(size=(8, 12)), jax.numpy.bfloat16))
      mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ('a', 'b'))
      out = {'one': fingerprints(jax.device_put(tree, jax.devices()[0]))}
      for name, spec in (('grid', P('a', 'b')), ('rows', P(('a', 'b'), None))):
        placed = jax.device_put(tree, NamedSharding(mesh, spec))
        assert len(placed['float64'].sharding.device_set) == 4
        out[name] = fingerprints(placed)
      assert tree['int64'].dtype == np.int64 and placed['float64'].dtype == np.float64
      high = tree['int64'].copy()
      high[5, 7] += 2**35   # only the upper 32-bit word of one element changes
      out['high_word_seen'] = fingerprints(high) != fingerprints(tree['int64'])
      print(json.dumps(out))
  """)
  res = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, JAX_PLATFORMS='cpu',
                                             XLA_FLAGS='--xla_force_host_platform_device_count=4'))
  assert res.returncode == 0, res.stderr[-3000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  assert len(out['one']) == 6 and len(set(out['one'].values())) == 6
  assert out['one'] == out['grid'] == out['rows']
  assert out['high_word_seen']


# ---------------------------------------------------------------------------
# Stray folders, temporaries of a killed save, bad steps written again.
# ---------------------------------------------------------------------------

def test_stray_folders_and_temporaries_block_neither_resume_nor_saving(good_dir, tmp_path, caplog):
  d = damaged_copy(good_dir, tmp_path, {})
  (d / '7').mkdir()                                  # an empty step folder
  (d / 'notes').mkdir()                              # a non-numeric folder
  tmp = d / '3.orbax-checkpoint-tmp'                 # what a save killed midway leaves
  shutil.copytree(d / '2', tmp)
  reader = ckpt_lib.Checkpointer(str(d))
  assert reader.steps == [1, 2] and reader.latest_step() == 2
  state, _ = reader.restore(ABSTRACT)
  assert equal(state, make_state(2))
  assert tmp.exists(), 'a reader (eval.py) must not touch a save that may be in flight'
  with caplog.at_level(logging.INFO, logger='transformer'):
    for step in (3, 7):   # Orbax would skip 3 (below 7) and refuse 7 (exists): both are saved
      reader.save(step, make_state(step))
    reader.close()
  assert f'Removing {tmp}' in caplog.text and not tmp.exists()
  assert (d / 'notes').is_dir()
  again = ckpt_lib.Checkpointer(str(d))
  assert again.steps == [1, 2, 3, 7]
  assert equal(again.restore(ABSTRACT)[0], make_state(7))
  assert equal(again.restore(ABSTRACT, 3)[0], make_state(3))


def test_bad_steps_are_set_aside_and_written_again(tmp_path, caplog):
  d = tmp_path / 'checkpoints'
  save_steps(d, [1, 2, 3], async_save=True)
  DAMAGE['data files: a few flipped bits'](str(d / '3'))
  DAMAGE['meta/ deleted'](str(d / '2'))
  c = ckpt_lib.Checkpointer(str(d), keep=3, async_save=True)
  with caplog.at_level(logging.WARNING, logger='transformer'):
    state, _ = c.restore(ABSTRACT)
  assert equal(state, make_state(1))
  assert 'step 3 in' in caplog.text and 'step 2 in' in caplog.text
  for step in (2, 3):   # training goes on from step 1 and writes steps 2 and 3 again
    c.save(step, make_state(10 + step))
  c.close()
  assert sorted(os.listdir(d)) == ['1', '2', '2.unreadable', '3', '3.unreadable']
  assert 'Moved checkpoint step 3 (unreadable)' in caplog.text
  again = ckpt_lib.Checkpointer(str(d))
  assert equal(again.restore(ABSTRACT)[0], make_state(13))


def test_averaging_over_a_damaged_step_names_it(tmp_path):
  save_steps(tmp_path / 'checkpoints', [1, 2, 3])
  DAMAGE['data files: a few flipped bits'](str(tmp_path / 'checkpoints' / '2'))
  bad = r"checkpoints/2 cannot be restored: array .params\['w'\] does not match"
  with pytest.raises(ckpt_lib.CheckpointError, match=bad):
    workdir_lib.average_checkpoints(str(tmp_path), ABSTRACT, num=3)
  assert not os.path.exists(tmp_path / 'checkpoints_avg' / '3')
  step, steps = workdir_lib.average_checkpoints(str(tmp_path), ABSTRACT, num=1)   # step 3 alone
  avg, meta = ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints_avg')).restore(ABSTRACT)
  assert (step, steps, meta['averaged_steps']) == (3, [3], [3]) and equal(avg, make_state(3))


# ---------------------------------------------------------------------------
# SIGKILL while an asynchronous save is in flight, then exact resume.
# ---------------------------------------------------------------------------

TRAIN = ['train.py', '--config=configs/lm_shakespeare_char.py', '--config.model.d_model=32',
         '--config.model.num_heads=2', '--config.model.d_ff=64',
         '--config.model.num_decoder_layers=1', '--config.seq_len=16', '--config.batch_size=4',
         '--config.eval_batch_size=8', '--config.eval_max_batches=1',
         '--config.log_every_steps=4', '--config.eval_every_steps=100000',
         '--config.keep_checkpoints=3', '--config.async_checkpointing=True',
         '--config.warmup_steps=2', '--config.num_train_steps=12']
STEPS = 12


def _train(workdir, checkpoint_every):
  # The runs share a compilation cache: only the first compiles (the same executables).
  cache = dict(JAX_COMPILATION_CACHE_DIR=str(workdir.parent / 'jax_cache'),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return subprocess.Popen([sys.executable, *TRAIN, f'--workdir={workdir}',
                           f'--config.checkpoint_every_steps={checkpoint_every}'],
                          cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu', **cache),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _state_of(workdir, step):
  """The full train state (and meta) of a checkpoint, read with the run's own abstract state."""
  from configs import lm_shakespeare_char
  from transformer import engine
  c = lm_shakespeare_char.get_config()
  c.model.update(d_model=32, num_heads=2, d_ff=64, num_decoder_layers=1)
  c.update(dict(seq_len=16, batch_size=4, warmup_steps=2, num_train_steps=STEPS))
  exp = engine.Experiment(c, str(workdir))
  return ckpt_lib.Checkpointer(os.path.join(workdir, 'checkpoints')).restore(
      exp.abstract_state, step)


@pytest.mark.slow
def test_sigkill_during_async_save_then_resume_is_exact(tmp_path, data_dir, caplog):
  full, killed = tmp_path / 'full', tmp_path / 'killed'
  reference = _train(full, checkpoint_every=STEPS)   # uninterrupted
  out = reference.communicate(timeout=300)[0]
  assert reference.returncode == 0, out[-3000:]
  proc = _train(killed, checkpoint_every=1)          # a save in flight nearly all the time
  ckdir, in_flight = killed / 'checkpoints', None
  deadline = time.time() + 120
  try:
    while in_flight is None and time.time() < deadline and proc.poll() is None:
      names = os.listdir(ckdir) if ckdir.is_dir() else []
      if any(n.isdigit() for n in names):   # kill once a checkpoint exists and another is written
        in_flight = next((n for n in names if ckpt_lib.TMP_SUFFIX in n), None)
      time.sleep(0.002)
  finally:
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=60)[0]
  assert in_flight, f'no save was caught in flight (rc {proc.returncode}):\n{out[-3000:]}'
  assert proc.returncode == -signal.SIGKILL
  left = [n for n in os.listdir(ckdir) if ckpt_lib.TMP_SUFFIX in n]   # unless it just finished

  # The checkpoint before the interrupted save is whole and verified.
  last = ckpt_lib.Checkpointer(str(ckdir)).latest_step()
  assert last is not None and last <= int(in_flight.split('.')[0]) < STEPS
  with caplog.at_level(logging.WARNING, logger='transformer'):
    _, meta = _state_of(killed, None)
  assert meta['step'] == last and not warnings_of_ours(caplog), caplog.text

  resumed = _train(killed, checkpoint_every=1)
  out = resumed.communicate(timeout=300)[0]
  assert resumed.returncode == 0, out[-3000:]
  assert f'Restored checkpoint at step {last} ' in out
  assert not [n for n in os.listdir(ckdir) if ckpt_lib.TMP_SUFFIX in n]
  for name in left:
    assert f'Removing {ckdir / name}, left by a save that did not finish' in out

  a, meta_a = _state_of(full, STEPS)
  b, meta_b = _state_of(killed, STEPS)
  assert meta_a['fingerprints'] == meta_b['fingerprints']   # every bit of the whole state
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_old_steps_leave_by_one_rename_and_leftovers_are_cleared(tmp_path):
  """The fault campaign: kill -9 while Orbax removed the oldest step left it half-deleted
  among the kept ones (6 kept instead of 5, one unreadable). Retired steps are now renamed
  into checkpoints/deleted/ in one step and removed from there."""
  d = tmp_path / 'checkpoints'
  c = ckpt_lib.Checkpointer(str(d), keep=2)
  for step in (1, 2, 3):
    c.save(step, make_state(step))
    c.wait()
  assert c.steps == [2, 3]
  assert sorted(os.listdir(d / ckpt_lib.DELETED_DIR)) == ['1']   # retired by a rename
  c.save(4, make_state(4))
  c.wait()
  assert sorted(os.listdir(d / ckpt_lib.DELETED_DIR)) == ['2']   # 1 removed at this save
  c.close()
  assert os.listdir(d / ckpt_lib.DELETED_DIR) == []
  # What a kill during a removal leaves behind is cleared by the next writer.
  (d / ckpt_lib.DELETED_DIR / '2' / 'state').mkdir(parents=True)
  c = ckpt_lib.Checkpointer(str(d), keep=2)
  state, _ = c.restore(ABSTRACT)
  assert equal(state, make_state(4)) and c.steps == [3, 4]
  c.save(5, make_state(5))
  c.close()
  assert c.steps == [4, 5] and os.listdir(d / ckpt_lib.DELETED_DIR) == []


@pytest.mark.parametrize('damage', ['a leaf removed', 'a leaf marked skip_deserialize'])
def test_damaged_tree_metadata_of_the_newest_step_falls_back(damage, good_dir, tmp_path, caplog):
  """The fault campaign: damage to the newest step's state/_METADATA stopped the resume with
  'written by another model ... Run with the config that trained it', although the older
  steps were intact: only the newest step was checked against the model."""
  d = damaged_copy(good_dir, tmp_path, {})
  path = d / '2' / 'state' / '_METADATA'
  meta = json.loads(path.read_text())
  leaf = next(k for k in meta['tree_metadata'] if "'w'" in k)
  if damage == 'a leaf removed':
    del meta['tree_metadata'][leaf]
  else:
    meta['tree_metadata'][leaf]['value_metadata']['skip_deserialize'] = True
  path.write_text(json.dumps(meta))
  with caplog.at_level(logging.WARNING, logger='transformer'):
    state, meta = ckpt_lib.Checkpointer(str(d)).restore(ABSTRACT)
  assert equal(state, make_state(1)) and meta['step'] == 1
  assert 'Checkpoint step 2' in caplog.text and 'trying the one before' in caplog.text


def test_a_save_that_cannot_fit_is_one_error_before_anything_is_written(tmp_path, monkeypatch):
  """The fault campaign: a full disk mid-save ended the run with 300-800 lines of Orbax and
  asyncio tracebacks and no 'error:' line. The free space is checked before a save."""
  d = tmp_path / 'checkpoints'
  c = ckpt_lib.Checkpointer(str(d))
  c.save(1, make_state(1))
  c.wait()
  usage = shutil.disk_usage(str(d))
  monkeypatch.setattr(ckpt_lib.shutil, 'disk_usage',
                      lambda path: usage._replace(free=100 << 10))   # 100 KiB left
  with pytest.raises(ckpt_lib.CheckpointError,
                     match=r'Not enough disk space to save checkpoint 2 .* needs about 1\.\d MiB '
                           r'and 0\.1 MiB are free.*\[1\], stay as they are'):
    c.save(2, make_state(2))
  c.close()
  assert sorted(os.listdir(d)) == ['1']   # nothing written, no temporary left


def test_a_step_that_cannot_be_cleared_is_never_skipped_silently(tmp_path, monkeypatch, caplog):
  """The fault campaign (a step directory chmod 000, resumed by a non-root user): the run fell
  back, could not remove the directory (the error was ignored), skipped the save because the
  step 'existed', and exited 0 without it, at every resume. Writing a step now succeeds or
  fails loudly. (Root reads through chmod 000, so the failures are simulated.)"""
  d = tmp_path / 'checkpoints'
  c = ckpt_lib.Checkpointer(str(d))
  c.save(1, make_state(1))
  c.close()
  (d / '2').mkdir()   # a step directory whose contents cannot be listed (chmod 000)
  monkeypatch.setattr(ckpt_lib.Checkpointer, '_holds_files', lambda self, s: s != 2)
  monkeypatch.setattr(ckpt_lib.shutil, 'rmtree', lambda *a, **k: None)   # removal fails
  # A step that can be moved aside is written again, with a warning.
  with caplog.at_level(logging.WARNING, logger='transformer'):
    c = ckpt_lib.Checkpointer(str(d))
    c.save(2, make_state(2))
    c.close()
  assert 'Moved checkpoint step 2' in caplog.text
  monkeypatch.undo()
  state, _ = ckpt_lib.Checkpointer(str(d)).restore(ABSTRACT)
  assert equal(state, make_state(2))
  # One that cannot be moved aside either is an error naming it, not a skipped save.
  (d / '3').mkdir()
  monkeypatch.setattr(ckpt_lib.Checkpointer, '_holds_files', lambda self, s: s != 3)
  monkeypatch.setattr(ckpt_lib.shutil, 'rmtree', lambda *a, **k: None)
  real_rename = os.rename

  def rename(src, dst):
    if str(src).endswith(os.sep + '3'):
      raise PermissionError(13, 'Permission denied')
    real_rename(src, dst)
  monkeypatch.setattr(ckpt_lib.os, 'rename', rename)
  c = ckpt_lib.Checkpointer(str(d))
  with pytest.raises(ckpt_lib.CheckpointError, match=r'3 \(unreadable\) cannot be moved aside '
                                                     r'\(Permission denied\)'):
    c.save(3, make_state(3))


def _np_fingerprint(x: np.ndarray) -> tuple[int, int]:
  """The fingerprint's formula in NumPy (uint32 arithmetic, wrapping): word i of the
  row-major bits weighted by 2i+1 and by ((i * 0x9E3779B1) ^ (i >> 15)) | 1."""
  words = np.ascontiguousarray(x).view(np.uint32 if x.dtype.itemsize in (4, 8) else
                                       {1: np.uint8, 2: np.uint16}[x.dtype.itemsize])
  words = words.reshape(-1).astype(np.uint32)
  i = np.arange(words.size, dtype=np.uint32)
  w1 = i * np.uint32(2) + np.uint32(1)
  w2 = ((i * np.uint32(0x9E3779B1)) ^ (i >> np.uint32(15))) | np.uint32(1)
  return int(np.sum(words * w1, dtype=np.uint32)), int(np.sum(words * w2, dtype=np.uint32))


@pytest.mark.parametrize('shape', [(7,), (5, 13), (3, 4, 11)])
@pytest.mark.parametrize('dtype', ['float32', 'int32', 'float16', 'uint8'])
def test_chunked_fingerprints_equal_the_formula(shape, dtype):
  """Summed in chunks of 8 elements (the last chunk overlapping the one before) or whole, a
  leaf's fingerprint is the formula's, computed independently in NumPy."""
  x = np.random.default_rng(1).normal(size=shape) * 50
  x = x.astype(dtype)
  want = _np_fingerprint(x)
  for chunk in (8, 1 << 22):
    got = jax.jit(ckpt_lib._leaf_fingerprint, static_argnums=1)(jnp.asarray(x), chunk)
    assert tuple(int(v) for v in np.asarray(got)) == want, chunk
