"""Which decoder switch buys what: the Shakespeare char LM with each switch alone.

  python -m tools.sweep run --sweep=configs/sweeps/shakespeare_switches.py --parent=runs/switches
  python -m tools.sweep summary --parent=runs/switches --metric=validation/loss

Five trials of lm_shakespeare_char's full recipe (2,000 steps, about 2.5 minutes
each on 2 CPU cores), run one after another on the same machine: the baseline
(learned positions, 4 key/value heads, GELU feed-forward of width 512), each of
the three switches of lm_shakespeare_char_modern alone (rotary positions;
grouped-query attention with 2 key/value heads; SwiGLU of width 344), and all
three together (= lm_shakespeare_char_modern).

Result (results/sweep_shakespeare_switches.md, 2026-12-03, the commands above,
2-core AMD EPYC CPU, 10.4 min for the five trials): validation loss at step
2,000 (whole split; at steps 500 / 1,000 / 1,500 in parentheses)

| trial | step 2,000 | (500 / 1,000 / 1,500) |
|---|---|---|
| baseline | 1.8585 | (2.248 / 2.033 / 1.916) |
| 2 key/value heads (GQA) | 1.8489 | (2.298 / 2.033 / 1.902) |
| SwiGLU, width 344 | 1.7911 | (2.220 / 1.977 / 1.846) |
| rotary positions | 1.7048 | (1.996 / 1.840 / 1.747) |
| all three (= lm_shakespeare_char_modern) | 1.6640 | |

Rotary positions give most of the gain, SwiGLU a third of it; halving the
key/value heads costs nothing here (it halves the decoding cache). The
baseline and the combination reproduce their recorded runs exactly.
"""

BASE = 'configs/lm_shakespeare_char.py'
SWIGLU = {'model.gated_ffn': True, 'model.activation': 'silu', 'model.d_ff': 344}


def get_sweep():
  return [{}, {'model.positional': 'rope'}, {'model.num_kv_heads': 2}, dict(SWIGLU),
          {'model.positional': 'rope', 'model.num_kv_heads': 2, **SWIGLU}]
