"""A Bayesian search (Optuna's TPE) with early stopping for the Fashion-MNIST ViT
(configs/vit_fashion_mnist.py): augmentation, regularization and the learning rate, on a
shortened budget, chosen on the validation split (the last 5,000 training images).

  python -m tools.sweep run --sweep=configs/sweeps/fashion_tpe.py --parent=runs/fashion_tpe \\
      --config.num_train_steps=6000 --config.eval_every_steps=2000 \\
      --config.checkpoint_every_steps=2000 --config.augment.crop_padding=2
  python -m tools.sweep summary --parent=runs/fashion_tpe

12 trials of 6,000 steps (a quarter of the recipe's 24,000, with the cosine schedule over
them), one at a time (the model uses both cores); the median pruner stops a trial whose
validation accuracy at step 2,000 or 4,000 is below the median of the earlier trials' at
that step, after 4 trials that are never pruned. Random crops use 2 pixels of padding
(28x28 images). The best few then run at the full budget (issue 28).
"""

from transformer import sweep_space as sweep

BASE = 'configs/vit_fashion_mnist.py'


def get_search():
  return sweep.search({'augment.crop': sweep.choice(['none', 'random']),
                       'augment.mixup': sweep.choice([0.0, 0.2]),
                       'learning_rate': sweep.loguniform(5e-4, 3e-3),
                       'weight_decay': sweep.loguniform(0.01, 0.3),
                       'label_smoothing': sweep.uniform(0.0, 0.2),
                       'model.dropout_rate': sweep.uniform(0.0, 0.15)},
                      metric='validation/accuracy', direction='maximize', sampler='tpe',
                      pruner='median', max_trials=12, startup_trials=4, warmup_steps=2000,
                      seed=0)
