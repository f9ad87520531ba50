"""BPE transfer on Tiny Shakespeare: the pretrained GPT-2-shaped model against the same model
from scratch, two learning rates each (configs/shakespeare_gpt2_bpe.py).

  python -m tools.sweep run --sweep=configs/sweeps/shakespeare_gpt2_bpe.py \\
      --parent=runs/shakespeare_bpe_sweep
  python -m tools.sweep summary --parent=runs/shakespeare_bpe_sweep \\
      --metric=validation/nll_per_char

Results: configs/shakespeare_gpt2_bpe.py.
"""

from transformer import sweep_space as sweep

BASE = 'configs/shakespeare_gpt2_bpe.py'


def get_sweep():
  return sweep.product(sweep.axis('init_from', ['runs/gpt2_small', '']),
                       sweep.axis('learning_rate', [3e-4, 1e-3]))
