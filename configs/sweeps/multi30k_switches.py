"""Which switch buys what on Multi30k (issue 28): translate_multi30k with each switch alone,
on a quarter of its budget, chosen on val.

  python -m tools.sweep run --sweep=configs/sweeps/multi30k_switches.py \\
      --parent=runs/multi30k_switches --config.num_train_steps=350 \\
      --config.warmup_steps=50 --config.eval_every_steps=350 \\
      --config.checkpoint_every_steps=350
  python -m tools.report sweep --parent=runs/multi30k_switches --name=multi30k_switches \\
      --metric=val/perplexity

Three trials of configs/translate_multi30k.py (3+3 post-LN layers, d_model 256, 4 heads,
d_ff 512, sinusoidal positions) cut to 350 steps (a quarter of its 1,400, the cosine
schedule over them, 50 warmup steps), one after another on the 2-core CPU: the baseline,
rotary positions instead of sinusoids (the switch that bought most on Shakespeare), and a
SwiGLU feed-forward of width 344 (the same parameters as GELU at 512). Val perplexity per
SentencePiece piece of the shared vocabulary. The best go to the full budget next, where
the short budget's winner is checked again (on Fashion-MNIST it did not carry over).

Result (results/sweep_multi30k_switches.md with its plots, 2026-12-04, the commands above,
2-core AMD EPYC CPU with nothing else running, 35 min for the three trials): val
perplexity at step 350
  baseline (sinusoidal positions, GELU 512)   39.09
  SwiGLU, width 344                            33.55
  rotary positions                             24.88
Rotary positions lead by far this early in training (sinusoids are slow to learn at this
step count); whether the lead holds at the full 1,400 steps, in BLEU on val, is the next
run (issue 28). No BLEU was measured here and test was not read.
At the full budget it held (configs/translate_multi30k_rope.py): val perplexity 6.20 against
the baseline's 7.15, val tokenized BLEU 40.39 against 37.42.
"""

BASE = 'configs/translate_multi30k.py'
SWIGLU = {'model.gated_ffn': True, 'model.activation': 'silu', 'model.d_ff': 344}


def get_sweep():
  return [{}, {'model.positional': 'rope'}, dict(SWIGLU)]
