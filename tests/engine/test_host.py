"""transformer.host.tune_allocator: large blocks come from the reusable heap, not mmap."""

import ctypes
import os
import subprocess
import sys

import pytest

from tests import helpers

ROOT = helpers.REPO

# In a fresh process: optionally tune, malloc 40 MB, and report how many bytes
# glibc serves with mmap (mallinfo2().hblkhd) while the block is live.
PROBE = r'''
import ctypes, sys
sys.path.insert(0, sys.argv[1])
from transformer import host
tuned = host.tune_allocator()
class MallInfo2(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',
              'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.mallinfo2.restype = MallInfo2
p = libc.malloc(40 << 20)
print(int(tuned), libc.mallinfo2().hblkhd)
libc.free(ctypes.c_void_p(p))
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
  return bool(int(out[0])), int(out[1])


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason='needs glibc >= 2.33 (mallinfo2)')
def test_tuned_allocator_serves_large_blocks_from_the_heap():
  tuned, mmapped = _probe(None)
  assert tuned
  assert mmapped < (40 << 20), f'a 40 MB block was still mmapped ({mmapped} bytes)'


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason='needs glibc >= 2.33 (mallinfo2)')
def test_opt_out_leaves_malloc_alone():
  tuned, mmapped = _probe('0')
  assert not tuned
  assert mmapped >= (40 << 20)   # glibc's default: blocks this large are mmapped


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
