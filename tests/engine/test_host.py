"""transformer.host: tune_allocator (large blocks come from the reusable heap, not mmap) and
the persistent compilation cache of the entry points."""

import ctypes
import os
import subprocess
import sys

import pytest

from tests import helpers

ROOT = helpers.REPO

# In a fresh process: optionally tune, malloc 40 MB on the main thread, then 100 MB on a
# worker thread (as XLA's runtime threads allocate a step's temporaries), and report how many
# bytes glibc serves with mmap (mallinfo2().hblkhd, all arenas) while each block is live.
PROBE = r'''
import ctypes, sys, threading
sys.path.insert(0, sys.argv[1])
from transformer import host
tuned = host.tune_allocator()
class MallInfo2(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',
              'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.mallinfo2.restype = MallInfo2
def block(size, out):
  p = libc.malloc(size)
  out.append(libc.mallinfo2().hblkhd)
  libc.free(ctypes.c_void_p(p))
main, worker = [], []
block(40 << 20, main)
t = threading.Thread(target=block, args=(100 << 20, worker))
t.start()
t.join()
print(int(tuned), main[0], worker[0])
'''


def _glibc_with_mallinfo2() -> bool:
  if not sys.platform.startswith('linux'):
    return False
  try:
    return hasattr(ctypes.CDLL('libc.so.6'), 'mallinfo2')
  except OSError:
    return False


def _probe(env_value):
  env = dict(os.environ)
  env.pop('TRANSFORMER_TUNE_MALLOC', None)
  if env_value is not None:
    env['TRANSFORMER_TUNE_MALLOC'] = env_value
  out = subprocess.run([sys.executable, '-c', PROBE, ROOT], env=env, check=True,
                       capture_output=True, text=True).stdout.split()
  return bool(int(out[0])), int(out[1]), int(out[2])


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason='needs glibc >= 2.33 (mallinfo2)')
def test_tuned_allocator_serves_large_blocks_from_the_heap_on_every_thread():
  tuned, mmapped, mmapped_worker = _probe(None)
  assert tuned
  assert mmapped < (40 << 20), f'a 40 MB block was still mmapped ({mmapped} bytes)'
  # A worker thread's own arena would mmap a block over 64 MB whatever the threshold.
  assert mmapped_worker < (100 << 20), 'a worker thread\'s 100 MB block was mmapped'


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason='needs glibc >= 2.33 (mallinfo2)')
def test_opt_out_leaves_malloc_alone():
  tuned, mmapped, mmapped_worker = _probe('0')
  assert not tuned
  assert mmapped >= (40 << 20)   # glibc's default: blocks this large are mmapped
  assert mmapped_worker >= (100 << 20)


def test_building_an_experiment_leaves_malloc_alone(monkeypatch, data_dir):
  """The library never tunes the allocator itself; entry points call tune_allocator."""
  from configs import lm_shakespeare_char
  from transformer import engine, host

  def refuse():
    raise AssertionError('the library called host.tune_allocator()')
  monkeypatch.setattr(host, 'tune_allocator', refuse)
  c = lm_shakespeare_char.get_config()
  c.model.update(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=1)
  c.seq_len, c.batch_size = 8, 2
  exp = engine.Experiment(c, None)
  assert exp.task.name == 'lm'


def test_entry_points_tune_the_allocator():
  for path in ('train.py', 'eval.py', 'tools/average.py', 'tools/visualize.py',
               'benchmarks/train_speed.py', 'benchmarks/torch_reference.py',
               'benchmarks/decode_speed.py', 'benchmarks/profile_step.py',
               'benchmarks/sharding_memory.py'):
    with open(os.path.join(ROOT, path)) as f:
      assert 'host.tune_allocator()' in f.read(), path


def test_compilation_cache_dir_default_override_and_off(monkeypatch, tmp_path):
  from transformer import host
  monkeypatch.delenv('JAX_COMPILATION_CACHE_DIR', raising=False)
  monkeypatch.delenv('TRANSFORMER_COMPILATION_CACHE', raising=False)
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.delenv('XDG_CACHE_HOME', raising=False)
  assert host.compilation_cache_dir() == str(tmp_path / '.cache' / 'transformer' / 'jax')
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  assert host.compilation_cache_dir() == str(tmp_path / 'xdg' / 'transformer' / 'jax')
  monkeypatch.setenv('TRANSFORMER_COMPILATION_CACHE', str(tmp_path / 'mine'))
  assert host.compilation_cache_dir() == str(tmp_path / 'mine')
  for off in ('off', '0', ''):
    monkeypatch.setenv('TRANSFORMER_COMPILATION_CACHE', off)
    assert host.compilation_cache_dir() is None
  monkeypatch.setenv('JAX_COMPILATION_CACHE_DIR', str(tmp_path / 'jax_own'))   # JAX's wins
  assert host.compilation_cache_dir() == str(tmp_path / 'jax_own')


@pytest.mark.slow
def test_train_py_fills_the_compilation_cache_and_off_turns_it_off(tmp_path, data_dir):
  """A second process (a resume, eval.py) reuses the first one's compilations."""
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'   # tiny models compile fast
  args = [sys.executable, 'train.py', '--config=configs/lm_shakespeare_char.py',
          '--config.model.d_model=16', '--config.model.num_heads=2', '--config.model.d_ff=32',
          '--config.model.num_decoder_layers=1', '--config.seq_len=16', '--config.batch_size=4',
          '--config.eval_batch_size=4', '--config.eval_max_batches=1',
          '--config.num_train_steps=2', '--config.warmup_steps=1']
  env.pop('XDG_CACHE_HOME', None)
  for setting, home in ((None, 'h1'), ('off', 'h2')):
    run_env = dict(env, HOME=str(tmp_path / home))
    run_env.pop('TRANSFORMER_COMPILATION_CACHE', None)
    if setting is not None:
      run_env['TRANSFORMER_COMPILATION_CACHE'] = setting
    res = subprocess.run([*args, f'--workdir={tmp_path / home / "w"}'], cwd=ROOT, text=True,
                         capture_output=True, timeout=300, env=run_env)
    assert res.returncode == 0, res.stderr[-2000:]
  files = lambda d: [f for _, _, fs in os.walk(d) for f in fs]  # noqa: E731
  assert files(tmp_path / 'h1' / '.cache' / 'transformer' / 'jax')   # the default place
  assert not (tmp_path / 'h2' / '.cache').exists()                   # off
