"""Shared pytest setup: the data directory (helpers shared by the test files: helpers.py)."""

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
