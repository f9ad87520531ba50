"""The training and evaluation engine shared by every task, one module per concern.

  experiment.py  Experiment: task, mesh, optimizer, shardings, jitted steps, evaluation over a split
  loop.py        train_and_evaluate: the loop (a step plus periodic actions)
  evaluate.py    evaluation during training: the split check, the task's evaluators, the best
                 checkpoint
  inspect.py     describe / dry_run (train.py --print_config / --dry_run)

The workdir (its files, lock, resume check, restoring) is transformer/workdir.py;
console logging is transformer/logs.py.
"""

from __future__ import annotations

from transformer.engine.experiment import Experiment, TrainState
from transformer.engine.inspect import describe, dry_run
from transformer.engine.loop import train_and_evaluate

__all__ = ['Experiment', 'TrainState', 'describe', 'dry_run', 'train_and_evaluate']
