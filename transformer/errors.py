"""The user errors of the library: one base class, one subclass per kind (a leaf module).

A `UserError` is a mistake the user can fix (an invalid config, a missing
dataset, an unreadable checkpoint, a workdir in use, a diverged run, a
checkpoint that cannot be converted). The entry points print its message alone
and exit with status 2 (tools/cli.py); catching one never imports the engine.
Each kind is still a ValueError or RuntimeError, as before, for callers that
catch those.
"""

from __future__ import annotations


class UserError(Exception):
  """A problem the user can fix; the message says what is wrong and what to do."""


class ConfigError(UserError, ValueError):
  """An invalid experiment config; the message names each field and what is allowed."""


class DataError(UserError, ValueError):
  """A dataset that is missing, empty or malformed; the message names the file and the fix."""


class CheckpointError(UserError, RuntimeError):
  """A checkpoint is missing or cannot be restored; the message says which and why."""


class TrainingError(UserError, RuntimeError):
  """Training cannot go on (a workdir in use, a diverged run); the message says why and what
  to do."""


class ConversionError(UserError, ValueError):
  """A Hugging Face checkpoint this library cannot express (or a model it cannot export)."""


class InputError(UserError, ValueError):
  """Input given to a tool that does not fit the model (text longer than its positions, a
  layer or head it does not have, an image it cannot read); the message says what fits."""
