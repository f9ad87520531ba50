"""What early stopping and parallel trials buy on this machine, measured with the real
Shakespeare char LM (configs/lm_shakespeare_char.py, real data):

1. A 4-trial learning-rate grid of --grid_steps steps, run one trial at a time
   (--parallel=1) and then two at a time (--parallel=2, one core each): wall times.
2. The TPE search of configs/sweeps/shakespeare_tpe.py (--trials trials of --steps steps,
   2 at a time, median pruning): wall time, how many trials were pruned, the best trial.
3. The same trials (the parameters the search drew, in the same order) without pruning,
   2 at a time: wall time, and whether the search's best trial is also the best here.

  TRANSFORMER_DATA_DIR=../shared/data python benchmarks/sweep_pruning.py --out=runs/sweep_pruning

Everything is kept under --out (each sweep's directory: trials, metrics, summary, plots);
the numbers are printed and written to OUT/results.json. JAX's persistent compilation cache
is off for every trial (TRANSFORMER_COMPILATION_CACHE=off, unless --cache): otherwise each
sweep would reuse the compilations of the one before it (the unpruned rerun, those of the
search) and the comparison would not be like with like.
"""

import argparse
import json
import os
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import print_results  # noqa: E402
from tools import sweep  # noqa: E402

SEARCH = 'configs/sweeps/shakespeare_tpe.py'


def timed_run(sweep_path: str, parent: str, extra: list[str], parallel: int) -> float:
  t0 = time.perf_counter()
  records = sweep.run(sweep_path, parent, extra, settings={'parallel': parallel},
                      log=lambda line: print(f'  {line}', flush=True))
  took = time.perf_counter() - t0
  bad = [r for r in records if r.get('status') not in ('done', 'pruned')]
  if bad:
    raise SystemExit(f'{len(bad)} trial(s) of {parent} failed: {bad[0].get("error")}')
  return took


def best(parent: str, metric: str) -> tuple[str, float]:
  rows = [r for r in sweep.collect(parent) if r['status'] == 'done' and metric in r['metrics']]
  r = min(rows, key=lambda r: r['metrics'][metric])
  return r['trial'], r['metrics'][metric]


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--out', default='runs/sweep_pruning')
  p.add_argument('--steps', type=int, default=500)
  p.add_argument('--grid_steps', type=int, default=200)
  p.add_argument('--skip_grid', action='store_true')
  p.add_argument('--cache', action='store_true', help='keep the compilation cache on')
  args = p.parse_args()
  if not args.cache:
    os.environ['TRANSFORMER_COMPILATION_CACHE'] = 'off'     # inherited by every trial
    os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
  out = os.path.abspath(args.out)
  os.makedirs(out, exist_ok=True)
  res = {}

  if not args.skip_grid:
    grid = os.path.join(out, 'grid_sweep.py')
    with open(grid, 'w') as f:
      f.write(textwrap.dedent("""
          from transformer import sweep_space as sweep
          BASE = 'configs/lm_shakespeare_char.py'
          def get_sweep():
            return sweep.axis('learning_rate', [5e-4, 1e-3, 2e-3, 4e-3])
          """))
    flags = [f'--config.num_train_steps={args.grid_steps}',
             f'--config.eval_every_steps={args.grid_steps}']
    for parallel in (1, 2):
      print(f'grid of 4 trials, --parallel={parallel}', flush=True)
      res[f'grid_parallel{parallel}_s'] = timed_run(grid, os.path.join(out, f'grid_p{parallel}'),
                                                    flags, parallel)
    res['grid_parallel2_speedup'] = res['grid_parallel1_s'] / res['grid_parallel2_s']

  flags = [f'--config.num_train_steps={args.steps}', '--config.eval_every_steps=100']
  pruned_dir = os.path.join(out, 'tpe')
  print('TPE search with median pruning, --parallel=2', flush=True)
  res['search_pruned_s'] = timed_run(SEARCH, pruned_dir, flags, 2)
  rows = sweep.collect(pruned_dir)
  res['search_trials'] = len(rows)
  res['search_pruned_trials'] = sum(r['status'] == 'pruned' for r in rows)
  res['search_best'], res['search_best_loss'] = best(pruned_dir, 'validation/loss')
  sweep.summarize(pruned_dir, 'validation/loss')

  # The same parameters, in the order the search drew them, as a grid without pruning.
  trials = [sweep.read_trial(r['workdir'])['overrides'] for r in
            sorted(rows, key=lambda r: sweep.read_trial(r['workdir'])['number'])]
  same = os.path.join(out, 'same_trials_sweep.py')
  with open(same, 'w') as f:
    f.write('BASE = \'configs/lm_shakespeare_char.py\'\n\n\ndef get_sweep():\n'
            f'  return {json.dumps(trials, indent=2)}\n')
  full_dir = os.path.join(out, 'tpe_unpruned')
  print('the same trials without pruning, --parallel=2', flush=True)
  res['unpruned_s'] = timed_run(same, full_dir, flags, 2)
  res['unpruned_best'], res['unpruned_best_loss'] = best(full_dir, 'validation/loss')
  sweep.summarize(full_dir, 'validation/loss')
  res['pruning_time_saved'] = 1 - res['search_pruned_s'] / res['unpruned_s']
  res['same_best_trial'] = (res['search_best'].split('_', 1)[1]
                            == res['unpruned_best'].split('_', 1)[1])
  print_results(res, os.path.join(out, 'results.json'))


if __name__ == '__main__':
  main()
