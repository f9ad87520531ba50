"""The ablation table of configs/vit_fashion_mnist_tta.py (issue 28), from the runs' own metrics.

    python benchmarks/fashion_ablation.py      # reads results/vit_fashion_mnist_tta*/

Each row reads one evaluation record of a run's metrics.jsonl (kept under
results/vit_fashion_mnist_tta_ablation/, the recorded seed 0 under
results/vit_fashion_mnist_tta/). The runs and evaluations that wrote them:

  # the final recipe, seeds 0, 1, 2 (its one test evaluation is at the last step, flips on)
  python train.py --config=configs/vit_fashion_mnist_tta.py --workdir=runs/fashion_tta_sN \\
      --config.seed=N
  # the same models without flips: each workdir copied to runs/fashion_tta_sN_noflip, then
  python eval.py --workdir=runs/fashion_tta_sN_noflip --config.eval_flip=False
  # trained on 55,000 images (the last 5,000 held out), flips on: the choice on validation
  python train.py --config=configs/vit_fashion_mnist.py --workdir=runs/fashion_flip_holdout \\
      --config.eval_flip=True
  python eval.py --workdir=runs/fashion_flip_holdout --config.eval_flip=False
  # ... and on test, after the final runs (copied to runs/fashion_holdout_test first)
  python eval.py --workdir=runs/fashion_holdout_test --config.eval_split=test
  python eval.py --workdir=runs/fashion_holdout_test --config.eval_split=test \\
      --config.eval_flip=False
"""

from __future__ import annotations

import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from transformer.metric_writer import read_metrics  # noqa: E402

ABLATION = os.path.join(REPO, 'results', 'vit_fashion_mnist_tta_ablation')
RECORDED = os.path.join(REPO, 'results', 'vit_fashion_mnist_tta')


def evaluations(folder: str, split: str) -> list[dict]:
  """The evaluation records of `split` at the last step, in the order they were written:
  the training run's own first (no 'checkpoint' field), then eval.py's."""
  out = [r for r in read_metrics(folder) if r['split'] == split]
  last = max(r['step'] for r in out)
  return [r for r in out if r['step'] == last]


def accuracy(folder: str, split: str, index: int) -> float:
  return evaluations(os.path.join(ABLATION, folder) if not os.path.isabs(folder) else folder,
                     split)[index]['accuracy']


def rows() -> list[tuple[str, list[float], float | None]]:
  """(variant, test accuracies over seeds, validation accuracy or None)."""
  final = [accuracy(RECORDED, 'test', 0)] + [accuracy(f'fashion_tta_s{s}', 'test', 0)
                                             for s in (1, 2)]
  no_flip = [accuracy(f'fashion_tta_s{s}_noflip', 'test', 1) for s in (0, 1, 2)]
  return [
      ('recipe: 60,000 images, mirror-averaged evaluation', final, None),
      ('without the flips in evaluation', no_flip, None),
      ('without the 5,000 held-out images (55,000)', [accuracy('fashion_holdout_test', 'test', 0)],
       accuracy('fashion_flip_holdout', 'validation', 0)),
      ('without either (vit_fashion_mnist as it is, rerun)',
       [accuracy('fashion_holdout_test', 'test', 1)],
       accuracy('fashion_flip_holdout', 'validation', 1)),
  ]


def main() -> int:
  print('| variant | seeds | test accuracy | mean +- sd | validation |')
  print('|---|---|---|---|---|')
  for name, tests, val in rows():
    spread = (f'{100 * statistics.mean(tests):.2f} +- {100 * statistics.stdev(tests):.2f}'
              if len(tests) > 1 else '')
    shown = ', '.join(f'{100 * t:.2f}' for t in tests)
    print(f'| {name} | {len(tests)} | {shown} | {spread} | '
          f'{"" if val is None else f"{100 * val:.2f}"} |')
  return 0


if __name__ == '__main__':
  sys.exit(main())
