"""Which switch buys what on Penn Treebank (issue 28): lm_ptb with rotary positions and
SwiGLU, on a quarter of its budget, chosen on validation.

  python -m tools.sweep run --sweep=configs/sweeps/ptb_switches.py \\
      --parent=runs/ptb_switches --config.num_train_steps=1250 \\
      --config.warmup_steps=50 --config.eval_every_steps=1250 \\
      --config.checkpoint_every_steps=1250
  python -m tools.report sweep --parent=runs/ptb_switches --name=ptb_switches \\
      --metric=validation/perplexity

Three trials of configs/lm_ptb.py (3 pre-LN decoder layers, d_model 192, 4 heads, GELU
d_ff 768, learned positions, dropout 0.3) cut to 1,250 steps (a quarter of its 5,000, the
cosine schedule over them, 50 warmup steps), one after another on the 2-core CPU: the
baseline, rotary positions instead of learned ones (the switch that bought most on
Shakespeare and Multi30k), and rotary positions with a SwiGLU feed-forward of width 512
(the same parameters as GELU at 768). Validation perplexity per word, whole split,
non-overlapping 64-word windows. The best goes to the full budget next.

Result (results/sweep_ptb_switches.md with its plots, 2026-12-05, the commands above,
2-core AMD EPYC CPU, 25.8 min for the three trials, which shared the cores for part of
their time with Multi30k decoding and niced tests): validation perplexity at step 1,250
  baseline (learned positions, GELU 768)       191.17
  rotary positions                             164.94
  rotary positions + SwiGLU, width 512         163.38
Rotary positions buy 14%; SwiGLU on top of them 1% more, one seed, so within what a seed
could move. The best, both switches, is configs/lm_ptb_modern.py (its docstring has the
full-budget result). Test was not read here.
"""

BASE = 'configs/lm_ptb.py'
ROPE = {'model.positional': 'rope'}
SWIGLU = {'model.gated_ffn': True, 'model.activation': 'silu', 'model.d_ff': 512}


def get_sweep():
  return [{}, dict(ROPE), {**ROPE, **SWIGLU}]
