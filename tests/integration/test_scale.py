"""Gradient accumulation and pmap give the true token-weighted gradient, without moving the batch.

The measurements run on 8 forced CPU devices in tests/scale_checks.py (a
subprocess: the device count is fixed when JAX starts); the assertions are here.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import helpers

TOLERANCE = 1e-6   # float32 sums in another order: measured <= 4e-8 (benchmarks/RESULTS.md)


@pytest.fixture(scope='module')
def checks(tmp_path_factory):
  if not os.path.isdir(os.environ.get('TRANSFORMER_DATA_DIR', '')):
    pytest.skip('no data directory: set TRANSFORMER_DATA_DIR to shared/data')
  tmp = tmp_path_factory.mktemp('scale')
  out = tmp / 'checks.json'
  # Backend optimization level 0 halves XLA's CPU compile time; the collectives are placed
  # by the SPMD partitioner before it, and every side of each comparison uses the same flags.
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8 '
                                   '--xla_backend_optimization_level=0')
  res = subprocess.run([sys.executable, 'tests/scale_checks.py', str(out), str(tmp)],
                       cwd=helpers.REPO, env=env, capture_output=True, text=True, timeout=900)
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  return json.loads(out.read_text())


@pytest.mark.slow
def test_batches_are_ragged_so_a_mean_of_means_would_be_wrong(checks):
  for b in checks['batches']:
    assert len(set(b['tokens_per_device'])) > 1, b   # devices hold different token counts
  # The comparison below can see the mean-of-means error: it is >> the tolerance.
  assert min(checks['gradients']['mean_of_means']) > 100 * TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize('case', ['jit_k1', 'jit_k2', 'pmap_k1', 'pmap_k2'])
def test_gradient_equals_one_device_full_batch_gradient(checks, case):
  """Max |grad - reference| over all parameters, per batch: jit/pmap x 1/2 micro-batches."""
  diffs = checks['gradients'][case]
  assert len(diffs) == len(checks['batches'])
  assert max(diffs) <= TOLERANCE, (case, diffs)


@pytest.mark.slow
def test_accumulation_moves_no_batch_between_devices(checks):
  counts = checks['collectives']
  # Only the gradient all-reduce, with and without micro-batches.
  for name in ('strided_k1', 'strided_k2'):
    assert counts[name]['all-gather'] == 0 and counts[name]['collective-permute'] == 0, counts
    assert counts[name]['all-reduce'] >= 1, counts   # the count sees collectives at all
  # The former contiguous split did gather and permute the batch: the count can fail.
  assert counts['contiguous_k2']['all-gather'] + counts['contiguous_k2']['collective-permute'] > 0


@pytest.mark.slow
def test_mfu_divides_by_the_peak_of_every_device(checks):
  m = checks['mfu']
  assert m['num_devices'] == 8
  assert m['mfu'] == pytest.approx(m['model_tflops_per_s'] * 1e12 / (8 * m['stub_peak']),
                                   rel=1e-9)
