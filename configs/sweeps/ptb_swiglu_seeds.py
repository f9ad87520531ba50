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
"""

BASE = 'configs/lm_ptb.py'
ROPE = {'model.positional': 'rope'}
SWIGLU = {'model.gated_ffn': True, 'model.activation': 'silu', 'model.d_ff': 512}


def get_sweep():
  return [{**ROPE, 'seed': seed, **extra} for seed in (1, 2) for extra in ({}, SWIGLU)]
