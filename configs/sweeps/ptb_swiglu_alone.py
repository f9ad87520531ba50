"""lm_ptb_modern's ablation, the other half (issue 28): SwiGLU without rotary positions, at
the quarter budget of configs/sweeps/ptb_switches.py (whose three trials have the baseline,
rotary alone and both), seed 0.

  python -m tools.sweep run --sweep=configs/sweeps/ptb_swiglu_alone.py \\
      --parent=runs/ptb_swiglu_alone --config.num_train_steps=1250 \\
      --config.warmup_steps=50 --config.eval_every_steps=1250 \\
      --config.checkpoint_every_steps=1250
  python -m tools.report sweep --parent=runs/ptb_swiglu_alone --name=ptb_swiglu_alone \\
      --metric=validation/perplexity

Result (results/sweep_ptb_swiglu_alone.md, 2026-12-05, the commands above, 2-core AMD EPYC
CPU shared with the test suite and another trial, 23.7 min): validation perplexity at step
1,250: 188.7, against lm_ptb's 191.17 and rotary alone 164.94 (ptb_switches): SwiGLU alone
buys 1.3%, rotary positions 14%.
"""

from configs.sweeps.ptb_switches import SWIGLU   # the same switch as that sweep

BASE = 'configs/lm_ptb.py'


def get_sweep():
  return [dict(SWIGLU)]
