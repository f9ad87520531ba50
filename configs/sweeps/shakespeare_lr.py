"""Three-trial learning-rate sweep of the Shakespeare char recipe (configs/lm_shakespeare_char.py).

  python -m tools.sweep run --sweep=configs/sweeps/shakespeare_lr.py --parent=runs/sweep_lr
  python -m tools.sweep summary --parent=runs/sweep_lr --metric=validation/loss

Each trial is the full recipe (2,000 steps, about 5 minutes on 2 CPU cores)
at one peak learning rate; the minimum of the cosine decay stays 1e-4.
Shorter trials for a quick look: add --config.num_train_steps=500.

Result (results/sweep_shakespeare_lr.md, in docs/RESULTS.md): so far run only
with 1,000-step trials (2026-12-01, 2-core AMD EPYC CPU, with the Multi30k run
sharing the cores; 9 min 05 s for all three trials):

  python -m tools.sweep run --sweep=configs/sweeps/shakespeare_lr.py --parent=runs/sweep_lr \\
      --config.num_train_steps=1000

validation loss (whole split) at step 1,000: 3e-3: 1.961, 1e-3: 2.060,
3e-4: 2.245.
"""

from transformer import sweep_space as sweep

BASE = 'configs/lm_shakespeare_char.py'


def get_sweep():
  return sweep.axis('learning_rate', [3e-4, 1e-3, 3e-3])
