"""SST-2 transfer: the pretrained small BERT against the same model from scratch, three learning
rates each, chosen on 872 sentences held out of SST-2's train (configs/sst2_bert.py).

  python -m tools.sweep run --sweep=configs/sweeps/sst2_bert.py --parent=runs/sst2_sweep \\
      --config.validation_holdout_whole=False --config.tokenizer=hf:runs/bert_small/hf
  python -m tools.sweep summary --parent=runs/sst2_sweep --metric=validation/accuracy \\
      --descending

Then each start's best learning rate with two more seeds (the last stage below), and
SST-2's dev split once per trial.
Results: results/sweep_sst2_bert.md (the first round; configs/sst2_bert.py has the recipe
that followed). The two flags give today's configs/sst2_bert.py the first round's
validation split (872 rows drawn at random) and tokenizer; runs/bert_small is
configs/mlm_wordpiece.py's run, converted as configs/sst2_bert.py's docstring shows.
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
