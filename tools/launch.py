"""Launching: single runs and sweep trials through submitit, on this machine or on SLURM.

Engines (`--engine`):
  local   the default: jobs run as processes on this machine, `--parallel=N` at once,
          each on its own devices: one set of GPUs per job (CUDA_VISIBLE_DEVICES) on a
          GPU host, a disjoint set of cores (CPU affinity) on a CPU host
  slurm   submitit's SLURM executor: --partition, --time_min, --nodes, --tasks_per_node,
          --gpus_per_node, --cpus_per_task, --mem_gb, --sbatch=KEY=VALUE,... (any other
          sbatch option), --parallel (jobs in the queue at once)
  debug   in this process, one after another (tests)

A single training run, with one process per task as JAX expects (train.py then joins
them with jax.distributed, which reads SLURM's environment; docs/SHARDING.md):

  python -m tools.launch --engine=slurm --nodes=2 --gpus_per_node=8 --tasks_per_node=8 \\
      -- train.py --config=configs/wmt14_ende_big.py --workdir=runs/big

A job is a `Job`: the command, its workdir and devices. It appends the command's console
output to WORKDIR/console.log (task 0; other tasks to console.taskN.log; train.py writes its
own WORKDIR/train.log besides) and keeps its state in
WORKDIR/trial.json: status (pending, running, stopped, requeued, done, failed, pruned),
engine, job id, attempts, return code, times and, when it failed, the error's one line.
On SLURM the job asks for a signal before its time limit (`--signal_delay_s`): the
command gets SIGTERM, saves its checkpoint (train.py's preemption path), and the job is
requeued and resumes from it; a preempted or `scontrol requeue`d job resumes the same way.
A job that fails is resubmitted at most `--retries` times (never for a bad config,
exit status 2), then stays failed with its error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ('local', 'slurm', 'debug')
TRIAL_FILE = 'trial.json'
CONSOLE = 'console.log'         # a job's console output (stdout and stderr), in its workdir
TERMINAL = ('done', 'failed', 'pruned', 'cancelled')
PRUNED_FILE = 'pruned.json'     # written by a run its sweep's pruner stopped (tools/search.py)
BAD_INPUT = 2                   # train.py's exit status for a user error: never retried
SLURM_TIME_MIN = 24 * 60        # a SLURM job's time limit when --time_min is not given


class LaunchError(ValueError):
  """Launch settings that cannot work; the message says what to change."""


# ----------------------------------------------------------------------------- settings

@dataclasses.dataclass
class Settings:
  """Where and how jobs run. Sweep files may set any of these in LAUNCH = {...};
  command-line flags override them."""
  engine: str = 'local'
  parallel: int = 1               # jobs running (local) or queued (slurm) at once
  retries: int = 1                # resubmissions of a failed job
  # SLURM only:
  partition: str = ''
  time_min: int = 0               # 0: no limit (local), 24 hours (SLURM)
  nodes: int = 1
  tasks_per_node: int = 1
  gpus_per_node: int = 0
  cpus_per_task: int = 0          # 0: SLURM's default
  mem_gb: float = 0.0             # 0: SLURM's default
  signal_delay_s: int = 120       # SIGTERM this long before the time limit, then requeue
  max_requeues: int = 3           # time-limit/preemption requeues before giving up
  sbatch: dict = dataclasses.field(default_factory=dict)   # any other sbatch option

  def check(self) -> None:
    if self.engine not in ENGINES:
      raise LaunchError(f'unknown engine {self.engine!r}: use one of {", ".join(ENGINES)}')
    if self.parallel < 1:
      raise LaunchError(f'parallel={self.parallel} must be at least 1')
    if self.retries < 0:
      raise LaunchError(f'retries={self.retries} must be 0 or more')
    if self.engine == 'slurm' and not shutil.which('sbatch'):
      raise LaunchError('--engine=slurm, but this machine has no SLURM commands (sbatch is '
                        'not on PATH): run from a SLURM login node, or use --engine=local')
    if self.engine != 'slurm' and (self.nodes > 1 or self.tasks_per_node > 1):
      raise LaunchError(f'{self.nodes} nodes x {self.tasks_per_node} tasks need '
                        '--engine=slurm; the local and debug engines run one process per job')


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def settings_from(values: dict[str, Any]) -> Settings:
  """The defaults updated from {name: value} (flag strings or typed values), checked."""
  out = Settings()
  for name, value in values.items():
    if name not in FIELDS:
      raise LaunchError(f'unknown launch setting {name!r}; known: {", ".join(FIELDS)}')
    default = getattr(Settings(), name)
    try:
      if name == 'sbatch':
        value = value if isinstance(value, dict) else dict(
            kv.split('=', 1) for kv in str(value).split(',') if kv)
      else:
        value = type(default)(value)
    except ValueError:
      kind = {int: 'an integer', float: 'a number'}.get(type(default), type(default).__name__)
      raise LaunchError(f'launch setting {name}={value!r} is not {kind}'
                        + (' (use --sbatch=KEY=VALUE,KEY=VALUE)' if name == 'sbatch' else '')
                        ) from None
    setattr(out, name, value)
  out.check()
  return out


# ----------------------------------------------------------------------------- devices

def visible_gpus() -> list[str]:
  """The GPU ids this process may use: CUDA_VISIBLE_DEVICES, else those nvidia-smi lists."""
  env = os.environ.get('CUDA_VISIBLE_DEVICES')
  if env is not None:
    return [g for g in env.split(',') if g.strip() not in ('', '-1')]
  if not shutil.which('nvidia-smi'):
    return []
  try:
    out = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30).stdout
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith('GPU ')]


def device_slots(parallel: int, gpus: Sequence[str] | None = None,
                 cores: Iterable[int] | None = None) -> list[dict]:
  """`parallel` disjoint device sets for jobs running at once on this machine: each
  {'env': {...}, 'cores': (...)}: GPUs split evenly when there are any (CUDA_VISIBLE_DEVICES),
  else this process's cores split evenly (CPU affinity; XLA sizes its thread pool from it)."""
  gpus = visible_gpus() if gpus is None else list(gpus)
  cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
  if gpus:
    if parallel > len(gpus):
      raise LaunchError(f'--parallel={parallel} jobs need at least one GPU each; this machine '
                        f'has {len(gpus)} ({",".join(gpus)})')
    per = len(gpus) // parallel
    return [{'env': {'CUDA_VISIBLE_DEVICES': ','.join(gpus[i * per:(i + 1) * per])},
             'cores': None} for i in range(parallel)]
  if parallel > len(cores):
    raise LaunchError(f'--parallel={parallel} jobs need at least one core each; this process '
                      f'may use {len(cores)}')
  per = len(cores) // parallel
  return [{'env': {}, 'cores': tuple(cores[i * per:(i + 1) * per])} for i in range(parallel)]


# ----------------------------------------------------------------------------- the job

def read_record(workdir: str) -> dict:
  path = os.path.join(workdir, TRIAL_FILE)
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def write_json(path: str, obj) -> None:
  """`obj` as JSON into `path` through a temporary file renamed over it (named by process:
  a job and the sweep that launched it may write the same file), so that a reader never
  sees half of it."""
  tmp = f'{path}.{os.getpid()}.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, default=str)
  os.replace(tmp, path)


def write_record(workdir: str, record: dict) -> None:
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, TRIAL_FILE), record)


def update_record(workdir: str, **changes) -> dict:
  record = read_record(workdir)
  record.update(changes)
  write_record(workdir, record)
  return record


_ERROR_LINE = re.compile(r'^(error: .*|\w*(Error|Exception)\b.*)$')


def error_line(log_path: str) -> str:
  """The run's error in one line: train.py's `error: ...` message, else the last line
  that names an exception, else the log's last line."""
  try:
    with open(log_path, errors='replace') as f:
      lines = [line.strip() for line in f.readlines()[-200:] if line.strip()]
  except OSError:
    return ''
  for line in reversed(lines):
    if _ERROR_LINE.match(line):
      return line[:500]
  return lines[-1][:500] if lines else ''


def _task_rank() -> int:
  return int(os.environ.get('SLURM_PROCID', os.environ.get('SUBMITIT_LOCAL_GLOBALID', '0')) or 0)


@dataclasses.dataclass
class Job:
  """One command (train.py and its flags) run by submitit in `workdir`, on `cores` and
  with `env` added to the environment. Called once per task of the job."""
  argv: list[str]
  workdir: str
  env: dict = dataclasses.field(default_factory=dict)
  cores: tuple | None = None
  engine: str = 'local'

  def __post_init__(self):
    self._proc: subprocess.Popen | None = None
    self._signalled = False

  def __getstate__(self):     # submitit pickles the job; the child process stays here
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

  def __setstate__(self, state):
    self.__dict__.update(state)
    self.__post_init__()

  def __call__(self) -> dict:
    rank = _task_rank()
    log_path = os.path.join(self.workdir, CONSOLE if rank == 0 else f'console.task{rank}.log')
    os.makedirs(self.workdir, exist_ok=True)
    if rank == 0:
      previous = read_record(self.workdir)
      update_record(self.workdir, status='running', engine=self.engine,
                    job_id=_job_id(), attempts=previous.get('attempts', 0) + 1,
                    started=time.time(), host=os.uname().nodename)
    previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
    try:
      env = dict(os.environ, **self.env)
      env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
      with open(log_path, 'a') as log:
        self._proc = self._start(log, env)
        while self._proc.poll() is None:    # poll, not wait: a signal handler may poll too
          time.sleep(0.2)
        rc = self._proc.returncode
    finally:
      signal.signal(signal.SIGTERM, previous_handler or signal.SIG_DFL)
    if rank != 0:
      return {'returncode': rc}
    if self._signalled:
      status, error = 'stopped', 'stopped by SIGTERM (preempted, requeued or cancelled)'
    elif rc == 0:
      status, error = ('pruned' if os.path.exists(os.path.join(self.workdir, PRUNED_FILE))
                       else 'done'), ''
    else:
      status, error = 'failed', error_line(log_path) or f'exit status {rc}'
    return update_record(self.workdir, status=status, returncode=rc, error=error,
                         finished=time.time())

  def _start(self, log, env) -> subprocess.Popen:
    """The command, started with USR2 ignored (SLURM sends USR2 to every process of the job
    before the time limit; submitit's handler in this process answers it by asking the
    command to save through SIGTERM, see `checkpoint`; at its default, USR2 would kill the
    command unsaved) and pinned to its cores. Both without a preexec function (unsafe where
    threads run): an ignored signal is inherited through exec, and the command's threads
    (XLA's pool) start after its affinity is set here, and inherit it."""
    handler = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
      proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                              env=env)
    finally:
      signal.signal(signal.SIGUSR2, handler if handler is not None else signal.SIG_DFL)
    if self.cores:
      try:
        os.sched_setaffinity(proc.pid, self.cores)
      except OSError:    # it has already ended
        pass
    return proc

  def _on_sigterm(self, signum, frame) -> None:
    """SLURM (requeue, preemption, scancel) signals every process of the job: the command
    saves its checkpoint and exits by itself; this only remembers why it ended."""
    self._signalled = True
    if self._proc is not None and self._proc.poll() is None:
      self._proc.send_signal(signal.SIGTERM)

  def checkpoint(self, *args, **kwargs):
    """submitit calls this on the signal before the time limit (or a preemption): the
    command saves its checkpoint and stops, and the job is requeued to resume it."""
    import submitit   # only on the job's side, where submitit runs this
    self._signalled = True
    if self._proc is not None and self._proc.poll() is None:
      self._proc.send_signal(signal.SIGTERM)
      deadline = time.time() + 600
      while self._proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    if _task_rank() == 0:
      update_record(self.workdir, status='requeued', finished=time.time())
    return submitit.helpers.DelayedSubmission(Job(self.argv, self.workdir, self.env,
                                                  self.cores, self.engine))


def _job_id() -> str:
  for key in ('SLURM_ARRAY_JOB_ID', 'SLURM_JOB_ID', 'SUBMITIT_LOCAL_JOB_ID'):
    if os.environ.get(key):
      return os.environ[key]
  return str(os.getpid())


# ----------------------------------------------------------------------------- executors

def make_executor(settings: Settings, folder: str):
  """submitit's executor for the settings; its logs and pickles go to `folder`."""
  import submitit
  logging.getLogger('submitit').setLevel(logging.ERROR)   # no accounting: sacct warnings
  if settings.engine == 'debug':
    return submitit.DebugExecutor(folder)
  if settings.engine == 'local':
    executor = submitit.LocalExecutor(folder, python=sys.executable)
    executor.update_parameters(timeout_min=settings.time_min or 60 * 24 * 365)
    return executor
  executor = submitit.SlurmExecutor(folder, max_num_timeout=settings.max_requeues,
                                    python=sys.executable)
  params: dict[str, Any] = dict(
      time=settings.time_min or SLURM_TIME_MIN, nodes=settings.nodes, ntasks_per_node=settings.tasks_per_node,
      signal_delay_s=settings.signal_delay_s, job_name='transformer',
      additional_parameters=dict(settings.sbatch))
  if settings.partition:
    params['partition'] = settings.partition
  if settings.gpus_per_node:
    params['gpus_per_node'] = settings.gpus_per_node
  if settings.cpus_per_task:
    params['cpus_per_task'] = settings.cpus_per_task
  if settings.mem_gb:
    params['mem'] = f'{int(settings.mem_gb * 1024)}M'
  executor.update_parameters(**params)
  return executor


def slurm_queued(job_ids: Iterable[str]) -> set[str]:
  """Those of the SLURM jobs still pending or running (squeue; there may be no accounting)."""
  ids = [j for j in job_ids if j]
  if not ids:
    return set()
  p = subprocess.run(['squeue', '-h', '-o', '%i', '-j', ','.join(ids)], capture_output=True,
                     text=True, timeout=60)
  if p.returncode != 0:       # squeue fails when every listed job has left the queue
    return set()
  return {line.strip() for line in p.stdout.splitlines() if line.strip()}


class Launcher:
  """Runs jobs through one executor, at most `settings.parallel` at a time, each local one
  on its own device slot; resubmits failed jobs up to `settings.retries` times."""

  def __init__(self, settings: Settings, folder: str, log: Callable[[str], None] = print):
    settings.check()
    self.settings, self.folder, self.log = settings, folder, log
    self.executor = make_executor(settings, folder)
    self.slots = (device_slots(settings.parallel) if settings.engine == 'local'
                  else [{'env': {}, 'cores': None}] * settings.parallel)

  def submit(self, argv: Sequence[str], workdir: str, slot: int):
    job = Job(list(argv), workdir, dict(self.slots[slot]['env']), self.slots[slot]['cores'],
              self.settings.engine)
    update_record(workdir, status='pending', engine=self.settings.engine, submitted=time.time())
    handle = self.executor.submit(job)
    update_record(workdir, job_id=str(handle.job_id))
    if self.settings.engine == 'debug':
      handle.result()        # the debug executor runs the job when asked for its result
    return handle

  def finished(self, handles: dict[str, Any]) -> list[str]:
    """The workdirs (keys of `handles`) whose jobs have ended for good: a terminal status,
    or the job gone without one (killed hard)."""
    out, queued = [], None
    for workdir, handle in handles.items():
      status = read_record(workdir).get('status')
      if status in TERMINAL:
        out.append(workdir)
        continue
      if self.settings.engine == 'slurm':
        if queued is None:
          queued = slurm_queued(str(h.job_id) for h in handles.values())
        gone = str(handle.job_id) not in queued
      else:
        gone = handle.done()
      if not gone:
        continue
      previous = read_record(workdir)     # again: the job may have ended since
      if previous.get('status') in TERMINAL or previous.get('status') == 'stopped':
        out.append(workdir)    # stopped: cancelled, or preempted and not requeued (a job
      else:                    # SLURM requeues is queued again: not gone)
        error = previous.get('error') or (
            f'stopped before its time limit {self.settings.max_requeues + 1} times: not '
            'requeued again (raise --max_requeues or --time_min)'
            if previous.get('status') == 'requeued' else
            'the job ended without reporting (killed?)')
        update_record(workdir, status='failed', error=error, finished=time.time())
        out.append(workdir)
    return out

  def run_all(self, items: Sequence[tuple[str, Sequence[str], str]],
              on_finish: Callable[[str, dict], None] | None = None,
              more: Callable[[], tuple[str, Sequence[str], str] | None] | None = None,
              poll_s: float = 1.0) -> dict[str, dict]:
    """Runs (name, argv, workdir) items, `parallel` at a time, until all have finished; then,
    while `more()` gives another item, those too (a search asks for its next trial when a
    slot frees up). Returns {workdir: trial.json record}."""
    queue = list(items)
    running: dict[str, Any] = {}
    slot_of: dict[str, int] = {}
    names: dict[str, str] = {}
    attempts: dict[str, int] = {}
    records: dict[str, dict] = {}
    while True:
      while len(running) < self.settings.parallel:
        if not queue and more is not None:
          nxt = more()
          if nxt is not None:
            queue.append(nxt)
        if not queue:
          break
        name, argv, workdir = queue.pop(0)
        slot = min(set(range(self.settings.parallel)) - set(slot_of.values()))
        names[workdir], slot_of[workdir] = name, slot
        attempts[workdir] = attempts.get(workdir, 0) + 1
        self.log(f'{name}: submitted ({self.settings.engine}'
                 + (f', attempt {attempts[workdir]}' if attempts[workdir] > 1 else '') + ')')
        running[workdir] = (argv, self.submit(argv, workdir, slot))
      if not running:
        return records
      for workdir in self.finished({w: h for w, (_, h) in running.items()}):
        argv, _ = running.pop(workdir)
        slot_of.pop(workdir)
        record = read_record(workdir)
        retry = (record.get('status') == 'failed' and record.get('returncode') != BAD_INPUT
                 and attempts[workdir] <= self.settings.retries)
        took = record.get('finished', 0) - record.get('started', record.get('finished', 0))
        self.log(f'{names[workdir]}: {record.get("status")}'
                 + (f' in {took:.0f} s' if record.get('status') != 'failed' else
                    f' ({record.get("error", "")}){"; retrying" if retry else ""}'))
        if retry:
          queue.insert(0, (names[workdir], argv, workdir))
          continue
        records[workdir] = record
        if on_finish is not None:
          on_finish(workdir, record)
      if running:
        time.sleep(poll_s)

  def cancel(self, job_ids: Iterable[str]) -> None:
    ids = [j for j in job_ids if j]
    if ids and self.settings.engine == 'slurm':
      subprocess.run(['scancel'] + ids, capture_output=True, timeout=60)


# ----------------------------------------------------------------------------- command line

USAGE = """usage: python -m tools.launch [--engine=local|slurm|debug] [--SETTING=VALUE ...] \\
           -- train.py --config=FILE --workdir=DIR [--config.FIELD=VALUE ...]
settings: """ + ', '.join(f'--{n}' for n in FIELDS)


def parse_settings(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
  """({setting: value} from --NAME=VALUE flags that are launch settings, the other args)."""
  values, rest = {}, []
  for a in args:
    name = a[2:].split('=', 1)[0] if a.startswith('--') else ''
    if name in FIELDS and '=' in a:
      values[name] = a.split('=', 1)[1]
    else:
      rest.append(a)
  return values, rest


def main(argv: Sequence[str]) -> int:
  if '--' not in argv:
    print(USAGE, file=sys.stderr)
    return 2
  i = list(argv).index('--')
  values, rest = parse_settings(argv[:i])
  command = list(argv[i + 1:])
  if rest:
    print(f'error: unknown argument(s) {rest}\n{USAGE}', file=sys.stderr)
    return 2
  workdir = next((a.split('=', 1)[1] for a in command if a.startswith('--workdir=')), None)
  if not command or not workdir:
    print('error: the command after -- needs --workdir=DIR (its log and job state go there)',
          file=sys.stderr)
    return 2
  try:
    settings = settings_from(values)
  except LaunchError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if command[0].endswith('.py'):
    command = [sys.executable] + command
  workdir = os.path.abspath(workdir)
  launcher = Launcher(settings, os.path.join(workdir, 'submitit'))
  records = launcher.run_all([(os.path.basename(workdir), command, workdir)])
  record = records[workdir]
  return 0 if record.get('status') in ('done', 'pruned') else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
