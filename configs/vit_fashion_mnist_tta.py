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
Result (2026-12-04, the commands above, quiet 2-core AMD EPYC CPU; results/
vit_fashion_mnist_tta.json with its artifacts, the ablation's runs in
results/vit_fashion_mnist_tta_ablation/, its table from benchmarks/fashion_ablation.py):
seed 0 (the recorded run) 92.10% test accuracy, 14.2 min from the first to the last
training step (14 min 37 s for the whole train.py command, its test evaluation
included); seeds 1 and 2: 91.89% and 92.17%; mean 92.05% +- 0.15 (sample sd), so the
target is met on average and by two of the three seeds. Weakest class: Shirt.

Ablation (test accuracy; each change removed in turn):
  recipe (60,000 images, flips in evaluation)   92.10, 91.89, 92.17   mean 92.05 +- 0.15
  without the flips in evaluation               91.34, 91.12, 91.36   mean 91.27 +- 0.13
  trained on 55,000 (validation held out)        91.95 (seed 0; validation 92.12)
  without either (vit_fashion_mnist, rerun)      91.35 (seed 0; validation 91.14)
The flips buy 0.78 points (0.76, 0.77, 0.81 on the three seeds: five times the seeds'
spread); the 5,000 extra images 0.15 (one seed, within the spread). The rerun of
vit_fashion_mnist shows the run-to-run noise too: 91.14% validation where its first run
gave 91.72% with the same seed.
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
