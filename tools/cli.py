"""What every command-line entry point shares: the experiment config flag, user errors, provenance.

- `define_config_flag(argv)`: `--config` as usual (a config file, then
  `--config.FIELD=VALUE` overrides); a `.json` file is a run's own config.json
  (`train.py --config=runs/a/config.json --workdir=runs/b` repeats run a).
  Commands that read a trained workdir
  (eval.py, tools.visualize, tools.average) may leave `--config` out: the
  config is then the run's own `WORKDIR/config.json` (written by train.py
  with every override it was given), and `--config.FIELD=VALUE` still
  overrides it, so a run's overrides are never typed twice.
- `run(main)`: absl's app.run, except that the project's own user errors
  (an invalid config, a missing dataset, an unreadable checkpoint, a workdir
  in use, a diverged run) print their message alone on stderr and exit with
  status 2, without a traceback.
- `command_text()`: how the run was launched, for WORKDIR/command.txt: argv,
  git commit and whether the tree had uncommitted changes, date, host, devices.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import shlex
import signal
import subprocess
import sys
from typing import Any, Callable, Sequence

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from transformer import tasks
from transformer import workdir as workdir_lib
from transformer.errors import ConfigError, UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- the config flag

def _flag_value(argv: Sequence[str], name: str) -> str | None:
  """The value of --NAME=V or --NAME V in argv, or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def define_config_flag(argv: Sequence[str], default: str | None = None,
                       from_workdir: bool = False) -> None:
  """Defines --config: a config file (configs/NAME.py, or a run's config.json), or
  (from_workdir, no --config given) WORKDIR/config.json (or, when that is missing or
  corrupt, the config saved with the workdir's newest checkpoint). A config that cannot
  be read is one message and exit status 2."""
  try:
    _define_config_flag(argv, default, from_workdir)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    raise SystemExit(2) from None
  except _CONFIG_ERRORS as e:   # the default config and the overrides are parsed here
    print(f'error: {_config_error(e)}', file=sys.stderr, flush=True)
    raise SystemExit(2) from None


def _define_config_flag(argv, default, from_workdir) -> None:
  path = _flag_value(argv, 'config')
  if path is not None and path.endswith('.json'):
    # A run's (or a converted checkpoint's) config.json; absl's config_file flag reads
    # only Python files, so the file is loaded here and its flag taken out of argv.
    if not os.path.isfile(path):
      raise ConfigError(f'--config={path}: no such file')
    with open(path) as f:
      try:
        config = workdir_lib.config_from_json(f.read(), os.path.dirname(os.path.abspath(path)))
      except ValueError as e:
        raise ConfigError(f'--config={path} is not valid JSON ({e})') from None
    _define_loaded(argv, config, path)
    return
  if from_workdir and path is None:
    workdir = _flag_value(argv, 'workdir')
    if workdir and (os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_JSON))
                    or workdir_lib.has_checkpoints(workdir)):
      _define_loaded(argv, workdir_lib.read_config(workdir), f'{workdir}/config.json')
      return
  path = path if path is not None else default
  if path is None:
    config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
    return
  # A config file (configs/NAME.py, or NAME.py:ARG for its get_config), loaded here
  # rather than by the flag, so that its task's own fields can be added before the
  # overrides are read.
  _define_loaded(argv, _load_config_file(path), path)


def _load_config_file(path: str) -> ml_collections.ConfigDict:
  """get_config() of a config file; PATH:ARG calls get_config('ARG')."""
  file, *arg = path.split(':', 1)
  if not os.path.isfile(file):
    raise ConfigError(f'--config={file}: no such file')
  spec = importlib.util.spec_from_file_location('experiment_config_file', file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(*arg)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f'--config={path}: get_config() returned {type(config).__name__}, '
                      'not a ConfigDict')
  return config


def _define_loaded(argv, config: ml_collections.ConfigDict, source: str) -> None:
  """--config as `config`, its task's fields added at their defaults (so that
  `--config.FIELD=V` can set any of them). The --config argument stays in sys.argv (a
  process spawned from this one, e.g. a grain worker, re-imports the entry point with it);
  `_parse_flags` leaves it out of what absl parses."""
  tasks.with_task_fields(config)
  config_flags.DEFINE_config_dict('config', config, f'The experiment config: {source}, then '
                                  '--config.FIELD overrides.',
                                  sys_argv=_drop_config_argument(argv))


# ----------------------------------------------------------------------------- errors

def _one_line(e: BaseException) -> str:
  """An exception's message on one line (ml_collections' messages hold quotes and newlines)."""
  text = str(e.args[0]) if len(e.args) == 1 else str(e)
  while isinstance(e, (AttributeError, KeyError)) and text[:1] == text[-1:] == "'":
    text = text[1:-1]   # KeyError/AttributeError wrap their message in quotes, maybe twice
  return ' '.join(text.replace('\\n', ' ').replace("\\'", "'").split())


def _config_error(e: BaseException) -> str:
  """What went wrong loading --config (and its --config.FIELD overrides), in one line."""
  if isinstance(e, (AttributeError, KeyError)):
    if 'get_config' in str(e):
      return 'the config file has no get_config() function'
    return f'unknown config field: {_one_line(e)}'
  return f'the config could not be loaded: {type(e).__name__}: {_one_line(e)}'


# Loading --config runs the config file's own code: whatever it raises is the file's problem.
_CONFIG_ERRORS = (Exception,)


def _usage_error(message: str) -> None:
  sys.stdout.flush()
  print(f'error: {message}', file=sys.stderr, flush=True)
  # Skip interpreter teardown: Orbax's background threads print asyncio noise there.
  # Files and checkpoints were closed by the code that raised.
  os._exit(2)


def _without_config_argument(argv: list[str]) -> list[str]:
  """argv without --config=PATH (or --config PATH) when --config is a loaded config (a
  DEFINE_config_dict flag, which takes no argument); as it is otherwise."""
  if 'config' not in flags.FLAGS or not isinstance(flags.FLAGS['config'].default,
                                                    ml_collections.ConfigDict):
    return argv
  return _drop_config_argument(argv)


def _drop_config_argument(argv: Sequence[str]) -> list[str]:
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
    elif a == '--config':
      skip = True
    elif not a.startswith('--config='):
      out.append(a)
  return out


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, its errors (a misspelled --config.FIELD, a value of the wrong type,
  a config file that is missing, has a syntax error, has no get_config or raises in it) as
  one line and exit status 2 instead of a traceback or flag help."""
  try:
    rest = flags.FLAGS(_without_config_argument(argv))
    config = flags.FLAGS.config if 'config' in flags.FLAGS else None
    if config is not None:   # a config file's load error is raised when it is first read
      config.keys()
    return rest
  except flags.Error as e:
    _usage_error(_one_line(e))
  except _CONFIG_ERRORS as e:   # an unknown field ('Did you mean ...' kept), a bad file
    _usage_error(_config_error(e))


def run(main: Callable[[list[str]], Any]) -> None:
  """app.run(main), with the project's user errors, usage errors and flag errors as one
  message and exit status 2."""
  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      _usage_error(str(e))
    except app.UsageError as e:
      _usage_error(str(e))
    finally:
      # The work is done (or failed) and saved: a SIGTERM from here on has nothing to stop.
      # Python restores the default handler while it shuts down (which can take seconds
      # with background threads), and a late SIGTERM then ended a finished run with status
      # -15; an ignored signal stays ignored.
      signal.signal(signal.SIGTERM, signal.SIG_IGN)
  app.run(guarded, flags_parser=_parse_flags)


# ----------------------------------------------------------------------------- provenance

def _git(*args: str) -> str:
  try:
    return subprocess.run(['git', *args], cwd=REPO, capture_output=True, text=True,
                          timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return ''


def describe_hardware() -> str:
  """tools.report's description of this machine, with the JAX version and process count."""
  import jax

  from tools import report
  return (f'{report.default_hardware()}; jax {jax.__version__}, '
          f'{jax.process_count()} process(es)')


def command_text(argv: Sequence[str] | None = None) -> str:
  """How this process was launched, for WORKDIR/command.txt (one block per launch)."""
  argv = list(sys.argv if argv is None else argv)
  commit = _git('rev-parse', 'HEAD') or 'unknown (not a git checkout)'
  dirty = bool(_git('status', '--porcelain', '--untracked-files=no'))
  lines = [
      f'command: python {shlex.join(argv)}',
      f'commit: {commit}{" (with uncommitted changes)" if dirty else ""}',
      f'date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}',
      f'host: {platform.node()}',
      f'hardware: {describe_hardware()}',
  ]
  return '\n'.join(lines) + '\n\n'


# ----------------------------------------------------------------------------- --print_config

def print_run_description(config: ml_collections.ConfigDict, workdir: str,
                          dry_run: bool = False) -> None:
  """train.py --print_config / --dry_run: what the run would be, and (dry run) its first steps."""
  import dataclasses

  from transformer.engine import inspect
  with inspect.scratch_task(config, workdir) as task:
    d = inspect.describe(config, task)
    r = inspect.dry_run(config, task) if dry_run else None
  print('# experiment config (resolved)')
  print(config.to_json_best_effort(indent=2))
  settings = d['task'].settings.describe()
  if settings:
    print(f'# {config.task} task settings (defaults filled in)')
    for name, value in settings.items():
      print(f'  {name}: {value}')
  print('# model config (after presets)')
  for field in dataclasses.fields(d['model_config']):
    print(f'  {field.name}: {getattr(d["model_config"], field.name)}')
  print(f'parameters: {d["parameters"]:,}')
  flops = d['train_flops_per_step']
  print(f'train FLOPs per step: {flops:.4g} (batch {d["batch_shapes"]})' if flops else
        'train FLOPs per step: not counted for this task')
  if r is not None:
    print(f'compile: {r["compile_seconds"]:.1f} s ({r["compiled_shapes"]} batch shape(s), '
          f'one step each); step: {1000 * r["step_seconds"]:.1f} ms (mean of 3, compiled); '
          f'loss {r["loss"]:.4f}')
    print(f'per device: params {r["params_bytes_per_device"] / 2**20:.1f} MiB, optimizer state '
          f'{r["opt_state_bytes_per_device"] / 2**20:.1f} MiB')
