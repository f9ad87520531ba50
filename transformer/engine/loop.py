"""The training loop: one jitted step, then the periodic actions.

`train_and_evaluate(config, workdir)` takes the workdir (its lock, the resume
check, command.txt, train.log), builds the Experiment, restores the newest
good checkpoint or starts fresh, and runs the loop. The loop is a step plus
periodic actions, each its own small function, in this order after every step:

  check     the previous step's flag (read one step late, so reading it never
            waits for the step just dispatched): a bad step (non-finite loss or
            gradients, or an update that would overflow a parameter) was
            skipped; config.max_bad_steps in a row stop the run, naming the
            last applied update and keeping the last checkpoint
  log       every log_every_steps: loss, learning rate, step time, tokens/s,
            TFLOP/s (and MFU), ETA -> console, metrics.jsonl, TensorBoard
  evaluate  every eval_every_steps: loss/accuracy over the whole eval split;
            every extra_eval_every_steps: the task's evaluators (BLEU, ...);
            the best checkpoint by config.best_metric (engine/evaluate.py)
  agree     a stop signal (SIGTERM/SIGINT) seen by any process stops all at the
            same step (checked every preemption_sync_every_steps steps)
  save      every checkpoint_every_steps, at the end and on a stop: Orbax, in
            the background; non-finite parameters are never saved
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from transformer import checkpoint as ckpt_lib
from transformer import flops as flops_lib
from transformer import logs, tasks, validation
from transformer import workdir as workdir_lib
from transformer.engine.evaluate import (BestCheckpoint, check_best_metric, check_eval_split,
                                         run_evaluators)
from transformer.engine.experiment import Experiment, all_finite
from transformer.errors import TrainingError
from transformer.metric_writer import MetricWriter

log = logging.getLogger('transformer')


class _Stopper:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread
        pass

  def _handle(self, signum, frame):
    log.warning('Received signal %d: saving a checkpoint and stopping.', signum)
    self.requested = True

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _any_process(flag: bool, after=None) -> bool:
  """True on every process if `flag` is True on any (one all-gather; free with one process).

  `after`: outputs of the last step, waited for first, so that this
  collective never runs beside the step's own (a cheap precaution: it runs
  every config.preemption_sync_every_steps steps).
  """
  if jax.process_count() == 1:
    return flag
  jax.block_until_ready(after)
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


_all_finite = jax.jit(all_finite)


class _Window:
  """Metrics of the steps since the last log line: sums, rates, FLOPs, memory."""

  def __init__(self, exp: Experiment, step: int):
    self.exp = exp
    self.count_flops = True
    self.dtype = jnp.dtype(exp.task.model_cfg.dtype).name
    self.metrics = []
    self.compiled = False   # the first step (with compilation) is not timed
    self.restart_clock(step)

  def restart_clock(self, step: int) -> None:
    """Times and FLOPs count from now (after compilation, after an evaluation)."""
    self.flops, self.t0, self.step0 = 0.0, time.perf_counter(), step

  def add(self, metrics, batch) -> None:
    self.metrics.append(metrics)
    if self.count_flops:   # analytic training FLOPs of this process's rows
      flops = self.exp.task.train_flops(batch)
      self.count_flops = flops is not None
      self.flops += flops or 0.0

  def summarize(self, step: int) -> dict[str, float]:
    host = jax.device_get(self.metrics)
    good = [m for m in host if not m['bad_step']] or host
    sums = {k: float(np.sum([m[k] for m in good])) for k in good[0]
            if k not in ('learning_rate', 'grad_norm', 'bad_step')}
    self.metrics = []
    out = self.exp.task.summarize(sums)
    out['learning_rate'] = float(host[-1]['learning_rate'])
    out['grad_norm'] = float(np.mean([m['grad_norm'] for m in good]))
    out['bad_steps'] = int(sum(int(m['bad_step']) > 0 for m in host))
    seconds = time.perf_counter() - self.t0
    if step > self.step0 and seconds > 0:
      rate = (step - self.step0) / seconds
      out['steps_per_sec'] = rate
      out['step_time_ms'] = 1000.0 / rate
      out[f'{self.exp.task.weight_name}_per_sec'] = sums['weight'] / len(good) * rate
      if self.flops:   # this process's rows over this process's devices
        out['tflops_per_device'] = self.flops / seconds / jax.local_device_count() / 1e12
        mfu = flops_lib.mfu(self.flops / seconds, jax.local_devices(), self.dtype)
        if mfu is not None:
          out['mfu'] = mfu
    memory = _peak_memory_bytes()
    if memory is not None:
      out['peak_memory_gib'] = memory / 2**30
    self.restart_clock(step)
    return out


def _peak_memory_bytes() -> int | None:
  """Peak bytes in use on this process's first device, where the backend reports it (GPU, TPU)."""
  try:
    stats = jax.local_devices()[0].memory_stats()
  except Exception:   # backends without memory statistics
    return None
  return (stats or {}).get('peak_bytes_in_use')


class _Profiler:
  """A jax.profiler trace of steps (start, stop] into WORKDIR/profile (config.profile_steps)."""

  def __init__(self, config, workdir: str):
    window = tuple(config.get('profile_steps') or ())
    self.start, self.stop = window if len(window) == 2 else (None, None)
    self.dir = os.path.join(workdir, workdir_lib.PROFILE)
    self.active = False

  def before(self, step: int) -> None:
    if self.start is not None and step == self.start and not self.active:
      jax.profiler.start_trace(self.dir)
      self.active = True
      log.info('Profiling steps %d-%d into %s', self.start + 1, self.stop, self.dir)

  def annotation(self, step: int):
    if self.active:
      return jax.profiler.StepTraceAnnotation('train', step_num=step)
    return contextlib.nullcontext()

  def after(self, step: int, outputs) -> None:
    if self.active and step >= self.stop:
      jax.block_until_ready(outputs)
      self.close()

  def close(self) -> None:
    if self.active:
      jax.profiler.stop_trace()
      self.active = False
      log.info('Profile written to %s (open it with TensorBoard or Perfetto)', self.dir)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at: int | None = None, command: str = '',
                       stop_requested: Callable[[], bool] | None = None,
                       on_eval: Callable[[int, str, dict], bool] | None = None
                       ) -> dict[str, Any]:
  """Trains (resuming from WORKDIR if it has checkpoints); returns the last metrics.

  `stop_at` interrupts the run after that step as a preemption would (a
  checkpoint is saved); running again resumes it. `command`: how the run was
  launched (tools.cli.command_text), appended to WORKDIR/command.txt once the
  workdir is this run's. `stop_requested`: whether a stop signal arrived before
  this was called (train.py catches SIGTERM from its first line): SIGTERM and
  SIGINT are caught from the start, so a preemption during start-up (data,
  compilation, restore) ends cleanly before the first step, with nothing trained.
  `on_eval(step, split, metrics)`: called on process 0 after each periodic evaluation (a
  sweep's pruner, tools/search.py); when it returns True the run saves its checkpoint and
  stops there, and the result has 'stopped_early': True.
  """
  stopper = _Stopper()
  stopper.requested = bool(stop_requested and stop_requested())
  handler = lock = None
  try:
    validation.validate(config)
    workdir_lib.make(workdir)
    lock = workdir_lib.Lock(workdir)
    workdir_lib.check_resume(config, workdir, tasks.task_class(config).resume_fixed)
    handler = workdir_lib.log_to_file(workdir)
    workdir_lib.append_command(workdir, command)
    return _Run(config, workdir, stop_at, stopper, on_eval).train()
  finally:
    stopper.restore()
    if handler is not None:
      log.removeHandler(handler)
      handler.close()
    if lock is not None:
      lock.release()


class _Run:
  """One training run: the Experiment, its state, and the periodic actions of the loop."""

  def __init__(self, config, workdir: str, stop_at: int | None, stopper: _Stopper,
               on_eval: Callable[[int, str, dict], bool] | None = None):
    for warning in validation.semantic_warnings(config):
      log.warning('Config: %s', warning)
    self.config, self.workdir, self.stop_at = config, workdir, stop_at
    self.exp = Experiment(config, workdir)
    check_eval_split(self.exp, config.eval_split)
    tokenizer = self.exp.task.tokenizer
    workdir_lib.check_tokenizer(workdir, tokenizer, 'this run')   # before anything compiles
    if config.get('init_from'):
      workdir_lib.check_tokenizer(config.init_from, tokenizer, 'this fine-tuning run')
    self.checkpointer = ckpt_lib.Checkpointer(
        workdir_lib.checkpoint_dir(workdir), keep=config.keep_checkpoints,
        async_save=config.get('async_checkpointing', True),
        allow_unverified=config.get('allow_unverified_checkpoints', False))
    self.checkpointer.clear_leftovers()   # a kill's, even if nothing is left to save
    self.state = self.exp.restore_or_init(self.checkpointer)
    workdir_lib.write_config(config, workdir)   # only once the checkpoints (if any) restored into it
    workdir_lib.record_tokenizer(workdir, tokenizer)
    workdir_lib.record_data_info(workdir, self.exp.task.kept_info())
    self.step = int(self.exp.unreplicate(self.state.step))
    self.writer = MetricWriter(workdir, resume_step=self.step)   # drops what is redone
    self.best = BestCheckpoint(config, workdir)
    self.stopper = stopper
    self.profiler = _Profiler(config, workdir)
    self.window = _Window(self.exp, self.step)
    self.last_eval: dict[str, float] = {}
    self.previous = None          # (step, metrics) of the step before: checked one step late
    self.bad_run: list[int] = []  # consecutive bad steps (bad_step > 0)
    self.last_applied: int | None = None   # the last step whose update was applied
    self.on_eval = on_eval
    self.stop_early = False       # on_eval asked to stop (a pruned sweep trial)

  # -- the loop ----------------------------------------------------------------------

  def train(self) -> dict[str, Any]:
    config, exp = self.config, self.exp
    total = config.num_train_steps
    n_params = sum(x.size for x in jax.tree.leaves(exp.unreplicate(self.state.params)))
    log.info('Task %s on %s: %s parameters, %s parallelism, mesh %s, steps %d -> %d',
             config.task, config.dataset, f'{n_params:,}', config.parallelism,
             dict(exp.mesh.shape), self.step, total)
    try:
      if _any_process(self.stopper.requested):   # a preemption during start-up: nothing to save
        log.warning('Stopped by a signal during start-up, before step %d: nothing was trained '
                    'in this run; run again to %s.', self.step + 1,
                    'resume' if self.step else 'start')
        return {'step': self.step}
      with exp.context():
        if self.step < total:
          check_best_metric(exp, exp.unreplicate(self.state.params))
        while self.step < total:
          metrics = self.train_step()
          self.check(metrics, last=self.step == total)
          if _due(self.step, config.log_every_steps, total):
            self.log()
          self.evaluate()
          if self.stop_early and self.step < total:
            self.save()
            log.warning('Stopped early at step %d: the sweep pruned this trial; checkpoint '
                        'saved (run again without pruning to finish it).', self.step)
            return {'step': self.step, 'stopped_early': True, **self.last_eval}
          if self.agree_to_stop(metrics):
            self.save()
            log.warning('Stopped at step %d after a signal; checkpoint saved.', self.step)
            break
          if _due(self.step, config.checkpoint_every_steps, total):
            self.save()
    finally:
      self.close()
    return {'step': self.step, **self.last_eval}

  def close(self) -> None:
    """Closes everything, even when one close fails (a save in flight that found the disk
    full): the metrics and the data's workers are closed before its error goes on."""
    with contextlib.ExitStack() as stack:
      close = getattr(self.exp.task.data, 'close', None)
      if close is not None:   # worker threads or processes of the input pipeline
        stack.callback(close)
      stack.callback(self.writer.close)
      stack.callback(self.best.close)
      stack.callback(self.checkpointer.close)
      stack.callback(self.profiler.close)

  # -- the step and the periodic actions ---------------------------------------------

  def train_step(self):
    exp, config, step = self.exp, self.config, self.step
    self.profiler.before(step)
    batch = exp.task.data.train_batch(step, config.batch_size, config.seed, exp.data_shard)
    with self.profiler.annotation(step):
      self.state, metrics = exp.train_step(self.state, exp.put_batch(batch))
    self.step += 1
    self.window.add(metrics, batch)
    self.profiler.after(self.step, metrics)
    if not self.window.compiled:
      jax.block_until_ready(metrics)
      log.info('First step (with compilation) took %.1f s', time.perf_counter() - self.window.t0)
      self.window.compiled = True
      self.window.restart_clock(self.step)   # rates count from the first compiled step
    return metrics

  def check(self, metrics, last: bool) -> None:
    """The finiteness flag of the previous step (and of this one, at the last step)."""
    max_bad = self.config.get('max_bad_steps', 3)
    pending = ([self.previous] if self.previous else []) + ([(self.step, metrics)] if last else [])
    for s, m in pending:
      bad = int(jax.device_get(m['bad_step']))
      if bad:
        self.bad_run.append(s)
        log.warning('step %d: %s; update skipped', s, _BAD_STEP[bad])
      else:
        self.bad_run = []
        self.last_applied = s
      if len(self.bad_run) >= max_bad:
        raise TrainingError(
            f'Training stopped at step {s}: {len(self.bad_run)} bad steps in a row (steps '
            f'{self.bad_run[0]}-{self.bad_run[-1]}; max_bad_steps={max_bad}): '
            f'{_BAD_STEP[bad]}. {self._last_update()} {self._kept()}; lower learning_rate, '
            'set grad_clip_norm, or check the data, then resume.')
    self.previous = (self.step, metrics)

  def _last_update(self) -> str:
    """Where the bad run's values came from: the last update this run applied."""
    if self.last_applied is None:
      return 'No update was applied in this run before them.'
    return (f'The last update applied was step {self.last_applied}\'s: if the loss was '
            'finite before it, that update is where the run went wrong.')

  def log(self) -> None:
    step, total, task = self.step, self.config.num_train_steps, self.exp.task
    out = self.window.summarize(step)
    self.writer.write(step, 'train', out)
    rate = out.get('steps_per_sec')
    eta = logs.format_eta((total - step) / rate) if rate else '?'
    speed = f'{out.get(f"{task.weight_name}_per_sec", 0.0):.0f} {task.weight_name}/s'
    if 'tflops_per_device' in out:
      speed += f'  {out["tflops_per_device"]:.3g} TFLOP/s/device'
      if 'mfu' in out:
        speed += f'  MFU {100 * out["mfu"]:.1f}%'
    log.info('step %d/%d  loss %.4f  lr %.3g  %.1f ms/step  %s  ETA %s', step, total,
             out['loss'], out['learning_rate'], out.get('step_time_ms', 0.0), speed, eta)

  def evaluate(self) -> None:
    """The split's loss/accuracy, the task's evaluators and the best checkpoint, where due."""
    config, step, total = self.config, self.step, self.config.num_train_steps
    loss_due = _due(step, config.eval_every_steps, total)
    extra_every = config.get('extra_eval_every_steps', 0)
    extra_due = extra_every > 0 and _due(step, extra_every, total)
    if not (loss_due or extra_due):
      return
    t_eval = time.perf_counter()
    params = self.exp.unreplicate(self.state.params)
    metrics: dict[str, Any] = {}
    try:
      if loss_due:
        self.last_eval = self.exp.evaluate(params, config.eval_split, config.eval_max_batches)
        metrics.update(self.last_eval)
      if extra_due:
        printable, _ = run_evaluators(self.exp, params, self.writer, step)
        metrics.update(printable)
    except Exception:
      log.error('Evaluation at step %d failed; saving the checkpoint of step %d first.',
                step, step)
      self.save()
      raise
    if metrics:
      self.writer.write(step, config.eval_split, metrics)
      log.info('eval %s step %d: %s', config.eval_split, step, logs.format_metrics(
          {k: v for k, v in metrics.items() if not k.endswith('signature')}))
      self.best.update(step, metrics, self._save_to)
      if self.on_eval is not None:
        stop = jax.process_index() == 0 and bool(self.on_eval(step, config.eval_split, metrics))
        self.stop_early = _any_process(stop)
    self.window.t0 += time.perf_counter() - t_eval   # evaluation time is not training time

  def agree_to_stop(self, metrics) -> bool:
    """A signal seen by any process stops all of them at the same step: each acts on the
    flag only once the processes have agreed on it."""
    if self.stop_at is not None and self.step >= self.stop_at:
      self.stopper.requested = True
    sync_every = max(1, self.config.get('preemption_sync_every_steps', 10))
    if self.step % sync_every == 0 or jax.process_count() == 1:
      return _any_process(self.stopper.requested, after=(self.state, metrics))
    return False

  def save(self) -> None:
    self._save_to(self.checkpointer, self.step, {})

  def _save_to(self, checkpointer: ckpt_lib.Checkpointer, step: int, meta: dict) -> None:
    if not bool(jax.device_get(_all_finite(self.state.params))):
      raise TrainingError(f'The parameters at step {step} are not finite; not saving them. '
                          f'{self._kept()}.')
    checkpointer.save(step, self.exp.unreplicate(self.state, to_host=True),
                      meta={'config': self.config.to_json_best_effort(), **meta})


  def _kept(self) -> str:
    latest = self.checkpointer.latest_step()
    return ('No checkpoint was written yet' if latest is None else
            f'The last checkpoint (step {latest}) is kept')


_BAD_STEP = {1: 'the loss or gradient norm is not finite',
             2: 'the loss and gradients are finite, but the update would make a parameter '
                'non-finite (an overflow)'}


def _due(step: int, every: int, total: int) -> bool:
  return step % every == 0 or step == total
