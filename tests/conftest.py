"""Shared pytest setup: the data directory, the compilation cache, the tiers.

(Helpers shared by the test files: helpers.py.)

- Tiers: every test under tests/integration/ (real processes, signals, multi-process and
  multi-device runs) is marked `slow`, as are the longer end-to-end tests elsewhere;
  `pytest -m "not slow" tests` is the quick tier for development, `pytest tests` the whole
  suite (what CI runs). Markers are strict (pytest.ini): a typo in one is an error.
- JAX's persistent compilation cache (in .pytest_cache/jax, shared by the test processes and
  every subprocess they start): the same tiny models are compiled by many tests and many
  `python train.py` launches; each compiles once per machine.
"""

import glob
import importlib.util
import os
import pathlib

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'   # beside the repo

# Tests read real datasets from ../shared/data unless told otherwise. A relative path (the
# README's `TRANSFORMER_DATA_DIR=../shared/data`) is made absolute here, against the directory
# pytest starts in, so that tests which change directory, link to it or start subprocesses
# elsewhere read the same folder.
if not os.environ.get('TRANSFORMER_DATA_DIR') and SHARED_DATA.is_dir():
  os.environ['TRANSFORMER_DATA_DIR'] = str(SHARED_DATA)
elif os.environ.get('TRANSFORMER_DATA_DIR'):
  os.environ['TRANSFORMER_DATA_DIR'] = os.path.abspath(os.environ['TRANSFORMER_DATA_DIR'])

# Read by JAX at import (this module is imported before any test module imports JAX), and
# inherited by the subprocesses the tests start.
_CACHE = pathlib.Path(__file__).resolve().parents[1] / '.pytest_cache' / 'jax'
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', str(_CACHE))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

# With libtpu installed (requirements-tpu.txt, for tools.plan's deviceless TPU compiles) and
# no TPU here, JAX would try it as a backend in every test process and subprocess (taking its
# lock file, logging errors): the tests run on the CPU unless told otherwise.
if importlib.util.find_spec('libtpu') is not None and not glob.glob('/dev/accel*') \
    and not glob.glob('/dev/vfio/[0-9]*'):
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')

_INTEGRATION = pathlib.Path(__file__).resolve().parent / 'integration'


def pytest_configure(config):
  """On a GPU or TPU, the numerics tests compare float32 products with float64 references at
  float32's tolerances: JAX's default precision there (TF32 on NVIDIA GPUs) fails 74 of
  tests/model and tests/interop/test_hf.py on an H200, so tests run at 'highest' (as
  config.matmul_precision='highest' does for a run). On the CPU nothing changes."""
  del config
  import jax
  if jax.default_backend() != 'cpu':
    jax.config.update('jax_default_matmul_precision', 'highest')


def pytest_collection_modifyitems(config, items):
  for item in items:
    if _INTEGRATION in pathlib.Path(str(item.fspath)).parents:
      item.add_marker(pytest.mark.slow)


@pytest.fixture(scope='session')
def require_data():
  """require_data(name=''): the data directory, once it is known to hold `name`; else skips.

  Session-scoped, so that module-scoped fixtures can use it.
  """
  def data_dir_with(name=''):
    d = os.environ.get('TRANSFORMER_DATA_DIR')
    if not d or not os.path.isdir(os.path.join(d, name)):
      pytest.skip('no data directory: set TRANSFORMER_DATA_DIR to shared/data')
    return d
  return data_dir_with


@pytest.fixture
def data_dir(require_data) -> str:
  return require_data()
