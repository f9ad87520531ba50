"""Tasks: one per experiment family, all driven by the same training loop.

Register a new family by adding its module here: its Task subclass in TASKS
and the dataset names it accepts in DATASETS.
"""

from __future__ import annotations

from transformer.tasks import classification
from transformer.tasks import lm
from transformer.tasks import translation
from transformer.tasks.base import Task, token_cross_entropy

TASKS: dict[str, type[Task]] = {
    'lm': lm.LMTask,
    'classification': classification.ClassificationTask,
    'translation': translation.TranslationTask,
}

# Datasets each task accepts (experiment.validate checks against this).
DATASETS: dict[str, tuple[str, ...]] = {
    'lm': lm.DATASETS,
    'classification': classification.DATASETS,
    'translation': translation.DATASETS,
}


def make_task(config, workdir: str | None) -> Task:
  return TASKS[config.task](config, workdir)


__all__ = ['DATASETS', 'TASKS', 'Task', 'make_task', 'token_cross_entropy']
