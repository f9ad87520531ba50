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
"""

BASE = 'configs/lm_ptb.py'
ROPE = {'model.positional': 'rope'}
SWIGLU = {'model.gated_ffn': True, 'model.activation': 'silu', 'model.d_ff': 512}


def get_sweep():
  return [{}, dict(ROPE), {**ROPE, **SWIGLU}]
