"""SST-2 transfer: the pretrained small BERT against the same model from scratch, two learning
rates each, chosen on 872 sentences held out of SST-2's train (configs/sst2_bert.py).

  python -m tools.sweep run --sweep=configs/sweeps/sst2_bert.py --parent=runs/sst2_sweep
  python -m tools.sweep summary --parent=runs/sst2_sweep --metric=validation/accuracy \\
      --descending

Then each start's best learning rate with two more seeds
(configs/sweeps/sst2_bert_seeds.py), and SST-2's dev split once per trial.
Results: configs/sst2_bert.py.
"""

from transformer import sweep_space as sweep

BASE = 'configs/sst2_bert.py'


def get_sweep():
  return sweep.product(sweep.axis('init_from', ['runs/bert_small', '']),
                       sweep.axis('learning_rate', [1e-4, 3e-4]))
