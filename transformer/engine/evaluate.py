"""Evaluation during training: the split check, the task's evaluators, and the best checkpoint.

- `check_eval_split`: opens the evaluation split before the first step, so a
  bad split fails before training.
- `run_evaluators`: the task's own evaluation (`Task.evaluate_extra`:
  translation decodes and scores BLEU on `decoding.max_eval_sentences`
  sentences, classification writes a confusion matrix, language models
  sample text), every `config.extra_eval_every_steps` steps of training as
  well as in eval.py; its numbers go to metrics.jsonl and TensorBoard.
- `BestCheckpoint`: keeps the checkpoint with the best `config.best_metric`
  (any metric of the evaluation split: `loss`, `accuracy`, or an evaluator's,
  e.g. `tokenized_bleu`) in WORKDIR/checkpoints_best, beside the latest ones;
  eval.py and generate.py read it with `--checkpoint=best`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from transformer import checkpoint as ckpt_lib
from transformer import tasks
from transformer import workdir as workdir_lib
from transformer.engine.experiment import Experiment
from transformer.errors import ConfigError, DataError

log = logging.getLogger('transformer')

# Metrics where lower is better (best_mode '' picks 'min' for these, 'max' otherwise).
LOWER_IS_BETTER = ('loss', 'nll', 'perplexity')


def check_eval_split(exp: Experiment, split: str) -> None:
  """Opens `split` and builds its first evaluation batch, so a bad split fails before training."""
  bs = exp.config.eval_batch_size or exp.config.batch_size
  try:
    next(iter(exp.task.data.eval_batches(split, bs, exp.data_shard)))
  except StopIteration:
    raise DataError(f'eval_split={split!r} of {exp.config.dataset} has no examples: '
                    'choose another config.eval_split') from None
  except (ValueError, KeyError) as e:
    raise DataError(f'eval_split={split!r} cannot be read: {e}') from e


def run_evaluators(exp: Experiment, params, writer, step: int) -> tuple[dict, dict[str, Any]]:
  """The task's evaluation of `params` (plain layout) at `step`: (its numbers and strings, for
  metrics.jsonl; all of its results, examples and lists included). The caller writes the
  first with the split's loss metrics, as one record."""
  task = exp.task
  sums = None
  if type(task).evaluator_sums is not tasks.Task.evaluator_sums:
    sums = exp.split_sums(task.evaluator_sums, params, exp.config.eval_split,
                          exp.config.eval_max_batches)
  extra = task.evaluate_extra(params, writer, step, sums)
  return {k: v for k, v in extra.items() if not isinstance(v, (list, dict))}, extra


def best_mode(config) -> str:
  mode = config.get('best_mode', '') or ''
  if mode:
    return mode
  return 'min' if config.get('best_metric', '') in LOWER_IS_BETTER else 'max'


class BestCheckpoint:
  """The checkpoint with the best `config.best_metric`, kept in WORKDIR/checkpoints_best.

  A resumed run reads the best value so far from that checkpoint's meta, so a
  worse evaluation after a restart never replaces it. Inactive (every method
  a no-op) when `config.best_metric` is empty.
  """

  def __init__(self, config, workdir: str):
    self.metric = config.get('best_metric', '') or ''
    self.mode = best_mode(config)
    self.value: float | None = None
    self._checkpointer = None
    if not self.metric:
      return
    directory = workdir_lib.checkpoint_dir(workdir, 'best')
    steps = workdir_lib.checkpoint_steps(directory)
    if steps:
      meta = ckpt_lib.read_meta(directory, steps[-1])
      if meta.get('best_metric') == self.metric:
        self.value = meta.get('best_value')
    self._checkpointer = ckpt_lib.Checkpointer(directory, keep=1,
                                               async_save=config.get('async_checkpointing', True))

  def _better(self, value: float) -> bool:
    if not math.isfinite(value):
      return False
    if self.value is None:
      return True
    return value > self.value if self.mode == 'max' else value < self.value

  def update(self, step: int, metrics: dict[str, Any], save) -> bool:
    """Saves (through `save(checkpointer, step, extra_meta)`) when `metrics` holds a better
    value of the metric; returns whether it did."""
    if not self.metric or self.metric not in metrics:
      return False
    value = float(metrics[self.metric])
    if not self._better(value):
      return False
    previous, self.value = self.value, value
    save(self._checkpointer, step, {'best_metric': self.metric, 'best_value': value})
    log.info('New best %s %.4f at step %d (was %s): saved to checkpoints_best', self.metric,
             value, step, 'none' if previous is None else f'{previous:.4f}')
    return True

  def close(self) -> None:
    if self._checkpointer is not None:
      self._checkpointer.close()


def check_best_metric(exp: Experiment, params) -> None:
  """Before training: a best_metric that the evaluation does not produce (and no evaluator
  runs) is a ConfigError naming the metrics there are (one evaluation batch tells)."""
  config = exp.config
  metric = config.get('best_metric', '')
  if not metric or config.get('extra_eval_every_steps', 0):
    return
  eval_metrics = exp.evaluate(params, config.eval_split, max_batches=1)
  if metric not in eval_metrics:
    raise ConfigError(f'best_metric={metric!r} is not a metric of the {config.eval_split!r} '
                      f'evaluation ({sorted(eval_metrics)}); an evaluator\'s metric (e.g. '
                      'tokenized_bleu) needs --config.extra_eval_every_steps=N')
