"""The benchmark suite's table (benchmarks/suite.py), from fixed results: no timing here."""

import importlib.util
import os

from tests import helpers


def _suite():
  path = os.path.join(helpers.REPO, 'benchmarks', 'suite.py')
  spec = importlib.util.spec_from_file_location('suite', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_table_rows_and_ratio():
  suite = _suite()
  results = {
      'train': [
          {'label': 'LM', 'params': 805376, 'compile_s': 6.1, 'step_ms_median': 100.0,
           'tokens_per_s': 7680.0, 'model_tflops_per_s': 0.037, 'mfu': 'n/a (no peak)',
           'host_peak_rss_bytes': 512 * 2**20},
          {'label': 'ViT', 'params': 1000, 'compile_s': 2.0, 'step_ms_median': 10.0,
           'examples_per_s': 12800.0, 'model_tflops_per_s': 400.0, 'mfu': 0.404,
           'device_peak_bytes': 2**30},
          {'label': 'broken', 'error': 'exit 1: boom'},
      ],
      'torch': {'torch_version': '2.13.0', 'ours_median_ms': 50.0, 'ours_p10_ms': 45.0,
                'ours_p90_ms': 55.0, 'torch_median_ms': 60.0, 'torch_p10_ms': 58.0,
                'torch_p90_ms': 70.0, 'ours_last_round_loss': 2.5,
                'torch_last_round_loss': 2.6, 'ratio_torch_over_ours': 1.2, 'steps_each': 200},
      'decode': [{'method': 'greedy, cached', 'new_tokens': 256, 'batch': 1, 'seconds': 0.5,
                  'tokens_per_s': 512.0, 'speedup_vs_recompute': 8.0,
                  'speedup_vs_fixed_buffer': 20.0, 'same_tokens': True},
                 {'method': 'beam 4', 'sentences': 1000, 'seconds': 40.0,
                  'sentences_per_s': 25.0, 'bleu': 36.1},
                 {'method': 'beam 4, cross K/V cached', 'sentences': 1000, 'seconds': 20.0,
                  'sentences_per_s': 50.0, 'bleu': 36.1, 'speedup_vs_per_step': 2.0,
                  'same_translations': True}],
  }
  md = suite.markdown(results)
  assert '| LM | 805,376 | 6.1 | 100.0 | 7,680 tokens/s | 0.037 | n/a (no peak) | 512 |' in md
  assert '| ViT | 1,000 | 2.0 | 10.0 | 12,800 examples/s | 400.000 | 40.4% | 1,024 |' in md
  assert '| broken | failed: exit 1: boom |' in md
  assert 'Ratio PyTorch eager / ours: **1.20**' in md and '200 steps each' in md
  assert 'torch.compile' not in md                       # not in these results
  results['torch'].update(compiled_median_ms=40.0, compiled_p10_ms=39.0, compiled_p90_ms=45.0,
                          compiled_last_round_loss=2.55, ratio_compiled_over_ours=0.8,
                          torch_compile_s=31.0)
  md = suite.markdown(results)
  assert '| median ms (p10-p90) | 50.0 (45.0-55.0) | 60.0 (58.0-70.0) | 40.0 (39.0-45.0) |' in md
  assert 'torch.compile / ours: **0.80** (compiling took 31 s)' in md
  assert ('8.0x faster than recomputing the growing prefix (20.0x than a fixed buffer), '
          'same tokens: True') in md
  assert '| Multi30k beam 4 | 1000 sentences | 40.0 | 25.0 sentences/s | BLEU 36.10 |' in md
  assert ('| Multi30k beam 4, cross K/V cached | 1000 sentences | 20.0 | 50.0 sentences/s | '
          'BLEU 36.10; 2.00x the per-step cross K/V, same translations: True |') in md


def test_torch_skipped_note():
  md = _suite().markdown({'torch': {'error': 'PyTorch not installed'}})
  assert md.startswith('PyTorch side by side: skipped (PyTorch not installed)')


def test_rows_print_as_they_finish_and_an_interrupt_keeps_the_table(monkeypatch, capsys):
  suite = _suite()
  row = {'params': 10, 'compile_s': 1.0, 'step_ms_median': 2.0, 'tokens_per_s': 3.0,
         'model_tflops_per_s': 0.001, 'mfu': 'n/a', 'host_peak_rss_bytes': 2**20}
  calls = []

  def fake_run(cmd, json_path, log):
    calls.append(cmd)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return dict(row)
  monkeypatch.setattr(suite, '_run', fake_run)
  assert suite.main(['--only=train,decode']) == 130
  out = capsys.readouterr().out
  first = f'| {suite.TRAIN[0][0]} | 10 | 1.0 | 2.0 | 3 tokens/s | 0.001 | n/a | 1 |'
  assert out.count(first) == 2                      # once as it finished, once in the table
  assert '(interrupted: partial table)' in out
  assert suite.TRAIN[1][0] not in out and len(calls) == 2


def test_quick_skips_the_cpu_sized_wmt_rows(monkeypatch):
  suite = _suite()
  seen = []
  monkeypatch.setattr(suite, '_run', lambda cmd, path, log: seen.append(cmd) or {'error': 'x'})
  monkeypatch.setattr(suite, '_accelerator', lambda: False)
  rows = suite.run_train('/tmp', True, lambda s: None)
  configs = [next(a for a in cmd if a.startswith('--config=')) for cmd in seen]
  assert not any('wmt14' in c for c in configs)
  assert len(rows) == len(suite.TRAIN) - 2 and all('--steps=5' in cmd for cmd in seen)
  (m30k,) = [cmd for cmd in seen if '--config=configs/translate_multi30k.py' in cmd]
  assert '--config.bucket_boundaries=(64,)' in m30k


def test_decode_cache_benchmark_runs_and_checks_its_tokens():
  """benchmarks/decode_cache.py (request-sized cache against a max_len one), tiny."""
  import subprocess
  import sys
  res = subprocess.run([sys.executable, 'benchmarks/decode_cache.py', '--layers=1', '--width=32',
                        '--tokens=8', '--max_lens=64,256', '--rounds=1'], cwd=helpers.REPO,
                       capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-2000:]
  assert 'same tokens in every variant: True' in res.stdout
  assert [line.split()[0] for line in res.stdout.splitlines()[2:]] == ['sized,'] * 2 + \
      ['max_len'] * 2


def test_fashion_ablation_table_is_read_from_the_kept_runs():
  """benchmarks/fashion_ablation.py: every row from the committed metrics; the recipe's first
  test accuracy is the recorded result's value."""
  import json
  import subprocess
  import sys
  res = subprocess.run([sys.executable, 'benchmarks/fashion_ablation.py'], cwd=helpers.REPO,
                       capture_output=True, text=True, timeout=60)
  assert res.returncode == 0, res.stderr
  rows = [line.split(' | ') for line in res.stdout.splitlines()[2:]]
  assert len(rows) == 4 and [r[1] for r in rows] == ['3', '3', '1', '1']
  with open(os.path.join(helpers.REPO, 'results', 'vit_fashion_mnist_tta.json')) as f:
    recorded = json.load(f)['value']
  assert rows[0][2].split(', ')[0] == f'{100 * recorded:.2f}'
  with open(os.path.join(helpers.REPO, 'results', 'vit_fashion_mnist_tta_ablation',
                         'table.md')) as f:
    assert f.read() == res.stdout   # the kept table is the script's output
