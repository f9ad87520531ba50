"""Tasks: one per experiment family, all driven by the same training loop.

Each module named in `FAMILIES` defines a `Task` subclass and registers it
with `@register` (transformer/tasks/base.py). The list is explicit: a stray
file in this folder (an editor's backup, a scratch copy) registers nothing.
Adding a family is one new module and its name here.
"""

from __future__ import annotations

from transformer.errors import ConfigError
from transformer.tasks import classification, lm, mlm, text_classification, translation
from transformer.tasks.base import TASKS, Task, register, token_cross_entropy

FAMILIES = (lm, translation, classification, mlm, text_classification)


def task_class(config) -> type[Task]:
  """The Task class of `config.task` (a ConfigError naming the tasks there are)."""
  if config.task not in TASKS:
    raise ConfigError(f'task={config.task!r} is not one of {tuple(TASKS)}')
  return TASKS[config.task]


def with_task_fields(config):
  """`config` with its task's own plain fields added at their defaults where it leaves them
  out (`Settings.add_missing`), so that the command line can override any of them; a config
  whose task is not known is returned as it is (its validation says so)."""
  if config.get('task') in TASKS:
    TASKS[config.task].settings_class.add_missing(config)
  return config


def make_task(config, workdir: str | None, data=None) -> Task:
  """The task of `config.task`, built (its data opened, its model config made); `data`: a
  data source to use instead (the task's `shape_data(config)`, for planning)."""
  cls = task_class(config)
  return cls(config, workdir) if data is None else cls(config, workdir, data=data)


__all__ = ['FAMILIES', 'TASKS', 'Task', 'make_task', 'register', 'task_class',
           'with_task_fields',
           'token_cross_entropy']
