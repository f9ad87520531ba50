"""Tasks: one per experiment family, all driven by the same training loop.

Each module of this package defines a `Task` subclass and registers it with
`@register` (transformer/tasks/base.py). Importing the package imports every
module in it, so adding a family is adding one file here: its task class,
the datasets it accepts, and its `validate(config)`.
"""

from __future__ import annotations

import importlib
import pkgutil

from transformer.experiment_config import ConfigError
from transformer.tasks.base import TASKS, Task, register, token_cross_entropy

for _module in pkgutil.iter_modules(__path__):
  if _module.name != 'base' and not _module.name.startswith('_'):
    importlib.import_module(f'{__name__}.{_module.name}')


def make_task(config, workdir: str | None) -> Task:
  """The task of `config.task`, built (its data opened, its model config made)."""
  if config.task not in TASKS:
    raise ConfigError(f'task={config.task!r} is not one of {tuple(TASKS)}')
  return TASKS[config.task](config, workdir)


__all__ = ['TASKS', 'Task', 'make_task', 'register', 'token_cross_entropy']
