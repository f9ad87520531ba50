"""A Bayesian search (Optuna's TPE) with early stopping over the Shakespeare char LM's
learning rate, warmup and dropout (configs/lm_shakespeare_char.py).

  python -m tools.sweep run --sweep=configs/sweeps/shakespeare_tpe.py --parent=runs/tpe \\
      --parallel=2 --config.num_train_steps=500 --config.eval_every_steps=100
  python -m tools.sweep summary --parent=runs/tpe
  tensorboard --logdir runs/tpe          # the HParams tab compares the trials

12 trials of 500 steps, 2 at a time on this machine (one core each), each evaluated on
the whole validation split every 100 steps; from step 100 on the median pruner stops a
trial whose validation loss is worse than the median of the earlier trials at the same
step (after 4 trials that are never pruned). `benchmarks/sweep_pruning.py` runs this and
then the same 12 trials without pruning, and compares the wall times (benchmarks/RESULTS.md).
"""

from transformer import sweep_space as sweep

BASE = 'configs/lm_shakespeare_char.py'


def get_search():
  return sweep.search({'learning_rate': sweep.loguniform(3e-4, 1e-2),
                       'warmup_steps': sweep.integer(0, 200, step=25),
                       'model.dropout_rate': sweep.uniform(0.0, 0.3)},
                      metric='validation/loss', sampler='tpe', pruner='median',
                      max_trials=12, startup_trials=4, warmup_steps=100, seed=0)
