"""SST-2 transfer: the pretrained small BERT against the same model from scratch, three learning
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


STARTS = sweep.axis('init_from', ['runs/bert_small', ''])


def get_sweep():
  # Trials keep their index, so later stages are appended: the pretrained model's best rate
  # was the largest of the first two, so 1e-3 was added for both starts; 1e-3 was then the
  # best of the three for both on the held-out validation split (seed 0), so two more seeds
  # ran there.
  return sweep.chain(sweep.product(STARTS, sweep.axis('learning_rate', [1e-4, 3e-4])),
                     sweep.product(STARTS, sweep.axis('learning_rate', [1e-3])),
                     sweep.product(STARTS, sweep.axis('learning_rate', [1e-3]),
                                   sweep.axis('seed', [1, 2])))
