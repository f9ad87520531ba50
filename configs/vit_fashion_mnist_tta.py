"""configs/vit_fashion_mnist.py's recipe with two changes, for the final test run (issue 28).

  # the final runs: all 60,000 training images; the one evaluation is on test, at the end
  python train.py --config=configs/vit_fashion_mnist_tta.py --workdir=runs/fashion_tta_s0
  python train.py --config=configs/vit_fashion_mnist_tta.py --workdir=runs/fashion_tta_s1 \\
      --config.seed=1                                              # and --config.seed=2
  # the same recipe chosen on validation (the last 5,000 training images held out):
  python train.py --config=configs/vit_fashion_mnist.py --workdir=runs/fashion_flip_holdout \\
      --config.eval_flip=True

The changes, each chosen before the test split was read:
1. Test-time flips (`eval_flip=True`, transformer/tasks/classification.py): evaluation
   averages the class probabilities of each image and its horizontal mirror (clothes are
   mirror-symmetric; the recipe already trains on random flips). Training is unchanged.
   Chosen on validation: +0.46 points on the search's best full-budget trial (91.34% ->
   91.80%) and on the recipe itself (see the ablation in benchmarks/RESULTS.md).
2. The final model trains on all 60,000 training images (`validation_holdout=0`) with the
   steps, schedule and every hyperparameter chosen on the 55,000/5,000 split, as He et
   al. 2016 did for CIFAR-10 (Deep Residual Learning, section 4.2: the training length
   determined on a 45k/5k split of the training set, the models trained on all 50k).
   There is then no
   validation split: the run evaluates once, at its last step, on test
   (`eval_every_steps = num_train_steps`), and nothing is chosen after that.

Everything else is configs/vit_fashion_mnist.py's: the ViT with a convolutional stem
(170,154 parameters), AdamW at 1e-3 with cosine decay, label smoothing 0.1, random
horizontal flips, batch 32, 24,000 steps.

Target: >= 92.0% test accuracy within 20 minutes of training on 2 CPU cores.
Result: benchmarks/RESULTS.md and results/vit_fashion_mnist_tta.json (filled in below
when recorded).
"""

from configs import vit_fashion_mnist


def get_config():
  c = vit_fashion_mnist.get_config()
  c.eval_flip = True                   # mirror-averaged evaluation
  c.validation_holdout = 0             # train on all 60,000 images (the recipe chosen already)
  c.eval_split = 'test'                # evaluated once, at the last step
  c.eval_every_steps = c.num_train_steps
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(vit_fashion_mnist.REFERENCE,
                 source="no external reference; the project's target (issue 28)")
