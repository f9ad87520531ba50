"""Importing a checkpoint of a few hundred MB does not need twice its size in host memory
(benchmarks/import_memory.py has the measurement; this runs it once, on a Llama-shaped
checkpoint, whose every projection is transposed on the way in)."""

import importlib.util
import os

import pytest

from tests import helpers


@pytest.mark.slow
def test_import_peak_memory_stays_under_twice_the_checkpoint(tmp_path):
  spec = importlib.util.spec_from_file_location(
      'import_memory', os.path.join(helpers.REPO, 'benchmarks', 'import_memory.py'))
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  size = bench.write_checkpoint(str(tmp_path / 'big'), 300, 'llama') / 2**20
  assert 250 < size < 350
  base = bench.peak_rss_mb(bench.FIXTURE, str(tmp_path / 'tiny'), eager=False)
  peak = bench.peak_rss_mb(str(tmp_path / 'big'), str(tmp_path / 'converted'), eager=False)
  assert peak - base < 2.0 * size, (peak, base, size)
  assert os.path.isdir(tmp_path / 'converted' / 'checkpoints' / '0')
