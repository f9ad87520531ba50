"""Shared pytest setup: the data directory, and small helpers."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'

# Tests read real datasets from ../shared/data unless told otherwise.
if not os.environ.get('TRANSFORMER_DATA_DIR') and SHARED_DATA.is_dir():
  os.environ['TRANSFORMER_DATA_DIR'] = str(SHARED_DATA)


@pytest.fixture
def data_dir() -> str:
  d = os.environ.get('TRANSFORMER_DATA_DIR')
  if not d or not os.path.isdir(d):
    pytest.skip('no data directory: set TRANSFORMER_DATA_DIR to shared/data')
  return d
