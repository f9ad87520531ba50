"""Is SwiGLU's 1% on PTB more than a seed's worth? The two best trials of
configs/sweeps/ptb_switches.py (rotary positions, with and without SwiGLU) again with
seeds 1 and 2, at the same quarter budget (issue 28's ablation of lm_ptb_modern).

  python -m tools.sweep run --sweep=configs/sweeps/ptb_swiglu_seeds.py \\
      --parent=runs/ptb_swiglu_seeds --config.num_train_steps=1250 \\
      --config.warmup_steps=50 --config.eval_every_steps=1250 \\
      --config.checkpoint_every_steps=1250
  python -m tools.report sweep --parent=runs/ptb_swiglu_seeds --name=ptb_swiglu_seeds \\
      --metric=validation/perplexity

Seed 0 of both is in results/sweep_ptb_switches.md (164.94 without SwiGLU, 163.38 with).
The seed sets the initialization, the dropout masks and the order of the windows.

Result (results/sweep_ptb_swiglu_seeds.md, 2026-12-05, the commands above, 2-core AMD EPYC
CPU, the first trial shared with the test suite): validation perplexity at step 1,250
  seed                      0 (ptb_switches)   1        2        mean +- sd
  rotary positions          164.94             163.72   165.24   164.63 +- 0.81
  rotary + SwiGLU (512)     163.38             164.18   162.56   163.38 +- 0.81
SwiGLU's difference (-1.56, +0.46, -2.68 by seed) is not the same sign on every seed.
"""

from configs.sweeps.ptb_switches import ROPE, SWIGLU   # the same switches as that sweep

BASE = 'configs/lm_ptb.py'


def get_sweep():
  return [{**ROPE, 'seed': seed, **extra} for seed in (1, 2) for extra in ({}, SWIGLU)]
