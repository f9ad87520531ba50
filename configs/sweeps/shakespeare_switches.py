"""Which decoder switch buys what: the Shakespeare char LM with each switch alone.

  python -m tools.sweep run --sweep=configs/sweeps/shakespeare_switches.py --parent=runs/switches
  python -m tools.sweep summary --parent=runs/switches --metric=validation/loss

Five trials of lm_shakespeare_char's full recipe (2,000 steps, about 2.5 minutes
each on 2 CPU cores), run one after another on the same machine: the baseline
(learned positions, 4 key/value heads, GELU feed-forward of width 512), each of
the three switches of lm_shakespeare_char_modern alone (rotary positions;
grouped-query attention with 2 key/value heads; SwiGLU of width 344), and all
three together (= lm_shakespeare_char_modern).

Result: not yet run at this commit (see results/sweep_shakespeare_switches.md once it is).
"""

BASE = 'configs/lm_shakespeare_char.py'
SWIGLU = {'model.gated_ffn': True, 'model.activation': 'silu', 'model.d_ff': 344}


def get_sweep():
  return [{}, {'model.positional': 'rope'}, {'model.num_kv_heads': 2}, dict(SWIGLU),
          {'model.positional': 'rope', 'model.num_kv_heads': 2, **SWIGLU}]
