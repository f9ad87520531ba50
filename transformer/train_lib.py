"""The training and evaluation engine shared by every task.

`train_and_evaluate(config, workdir)` validates the config, builds the task,
mesh, optimizer and state (created directly in its shardings), resumes from
the latest checkpoint in WORKDIR, and runs the loop: one jitted train step with
explicit in/out shardings and donated state, periodic evaluation over the whole
split, checkpoints, progress lines and metrics (metrics.jsonl + TensorBoard).
SIGTERM saves a checkpoint and exits cleanly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging as absl_logging
from jax.experimental import multihost_utils

from transformer import checkpoint as ckpt_lib
from transformer import flops as flops_lib
from transformer import optim, sharding, tasks, validation
from transformer.data import DataError
from transformer.experiment_config import ConfigError
from transformer.metric_writer import MetricWriter

log = logging.getLogger('transformer')


@flax.struct.dataclass
class TrainState:
  step: jax.Array          # int32 scalar: optimizer steps taken
  params: Any
  opt_state: Any
  rng: jax.Array           # uint32[2]: base key; step s uses fold_in(rng, s)


def _divide(grads, weight):
  return jax.tree.map(lambda g: g / jnp.maximum(weight, 1.0).astype(g.dtype), grads)


class Experiment:
  """Everything built from a config: task, mesh, optimizer, shardings, jitted steps.

  With `config.parallelism='pmap'` the steps are `jax.pmap`ped over this
  process's devices and the state they take has a leading device axis;
  `unreplicate` gives the plain state (what checkpoints hold). Otherwise one
  jitted step runs over the mesh and `unreplicate` is the identity.
  `devices` restricts the mesh to some devices (default: all); `task` is an
  already built task (default: `tasks.make_task(config, workdir)`).
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | None,
               devices: list[jax.Device] | None = None, task: tasks.Task | None = None):
    validation.validate(config)
    self.config = config
    self.workdir = workdir
    self.pmap = config.parallelism == 'pmap'
    self.task = task if task is not None else tasks.make_task(config, workdir)
    sizes, rules, from_preset = sharding.resolve(config)
    try:
      self.mesh = sharding.make_mesh(sizes, devices)
    except ValueError as e:
      raise ConfigError(f'Invalid sharding:\n  - {e}') from e
    self.optimizer, self.schedule = optim.make_optimizer(config, self.task.model_cfg.d_model)
    abstract = jax.eval_shape(self._init_state_boxed, jax.random.PRNGKey(0))
    if from_preset:
      rules, notes = sharding.drop_indivisible(abstract.params, dict(self.mesh.shape), rules)
      for note in notes:
        log.info('Sharding: %s', note)
    validation.validate_sharding(config, dict(self.mesh.shape), abstract.params, rules)
    self.rules = () if self.pmap else rules   # pmap: no activation constraints
    if self.pmap:
      self._build_pmap(abstract)
    else:
      self._build_jit(abstract)
    self.abstract_state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        nn.meta.unbox(abstract), self.state_sharding)

  def _build_jit(self, abstract):
    self.state_sharding = sharding.logical_shardings(abstract, self.mesh, self.rules)
    self.batch_sharding = sharding.batch_sharding(self.mesh)
    self.data_shard = sharding.host_batch_shard(self.mesh)
    self.train_step = jax.jit(self._train_step, in_shardings=(self.state_sharding,
                                                               self.batch_sharding),
                              out_shardings=(self.state_sharding, None), donate_argnums=0)
    self.gradients = jax.jit(self._mean_grads, in_shardings=(self.state_sharding,
                                                             self.batch_sharding))
    self.eval_step = jax.jit(self._eval_step,
                             in_shardings=(self.state_sharding.params, self.batch_sharding))

  def _build_pmap(self, abstract):
    self._local_mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()), ('batch',))
    replicated = jax.sharding.NamedSharding(self._local_mesh, jax.sharding.PartitionSpec())
    self.state_sharding = jax.tree.map(lambda _: replicated, nn.meta.unbox(abstract))
    self.data_shard = (jax.process_index(), jax.process_count())
    p_train = jax.pmap(self._pmap_train_step, axis_name='batch', donate_argnums=0)
    p_eval = jax.pmap(lambda p, b: jax.lax.psum(self._eval_step(p, b), 'batch'),
                      axis_name='batch')

    def train_step(state, batch):   # metrics are psummed: every device holds the same
      state, metrics = p_train(state, batch)
      return state, self.unreplicate(metrics)

    def eval_step(params, batch):
      return self.unreplicate(p_eval(params, batch))

    p_grads = jax.pmap(self._pmap_mean_grads, axis_name='batch')
    self.train_step, self.eval_step = train_step, eval_step
    self.gradients = lambda state, batch: self.unreplicate(p_grads(state, batch))

  # -- state -------------------------------------------------------------------

  def _init_state_boxed(self, rng):
    model = self.task.model(train=False)
    params = model.init({'params': rng}, *self.task.init_inputs())['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=self.optimizer.init(params),
                      rng=jax.random.PRNGKey(self.config.seed))

  def _init_plain(self) -> TrainState:
    # The out_shardings place the state; activation constraints do not matter here.
    init = jax.jit(lambda rng: nn.meta.unbox(self._init_state_boxed(rng)),
                   out_shardings=self.state_sharding)
    return init(jax.random.PRNGKey(self.config.seed))

  def init_state(self) -> TrainState:
    """Creates the state directly in its shardings (never whole on one device).

    pmap: replicated on this process's devices, then given the leading device axis.
    """
    return self.replicate(self._init_plain())

  def replicate(self, tree):
    """The plain state (as checkpoints hold it) in the layout the steps take."""
    if not self.pmap:
      return tree
    n = len(self._local_mesh.devices)
    stacked = jax.sharding.NamedSharding(self._local_mesh, jax.sharding.PartitionSpec('batch'))
    shardings = jax.tree.map(lambda _: stacked, tree)
    return jax.jit(lambda t: jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), t),
                   out_shardings=shardings)(tree)

  def unreplicate(self, tree, to_host: bool = False):
    """The plain state (or params) from the steps' layout; `to_host`: as NumPy arrays (pmap)."""
    if not self.pmap:
      return tree
    tree = jax.tree.map(lambda x: x[0], tree)
    return jax.device_get(tree) if to_host else tree

  def context(self):
    """The mesh and logical axis rules the steps run under (no mesh for pmap)."""
    return sharding.mesh_context(None if self.pmap else self.mesh, self.rules)

  # -- steps -------------------------------------------------------------------

  def _micro_batches(self, batch, k: int):
    """[B, ...] -> [k, B/k, ...]: micro-batch i holds rows i, i + k, i + 2k, ...

    Each device holds a contiguous block of B/devices rows; taking every k-th
    row gives every micro-batch an equal share of every device's block, so the
    split and the scan over it are local to each device. (A contiguous split,
    x.reshape(k, B/k), would put micro-batch i on 1/k of the devices and make
    XLA all-gather and permute the batch and activations.)
    """
    def split(x):
      x = x.reshape((x.shape[0] // k, k) + x.shape[1:]).swapaxes(0, 1)
      if self.pmap:   # already this device's rows
        return x
      spec = jax.sharding.PartitionSpec(None, sharding.BATCH_AXES)
      return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(self.mesh, spec))
    return jax.tree.map(split, batch)

  def _grads(self, params, batch, rng):
    """Gradients of the summed objective and the loss sums (over grad_accum_steps)."""
    k = self.config.grad_accum_steps

    def loss_fn(params, micro_batch, micro_rng):
      sums = self.task.loss_sums(params, micro_batch, micro_rng, train=True)
      return sums['objective'], sums

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if k == 1:
      (_, sums), grads = grad_fn(params, batch, rng)
      return grads, sums
    micro = self._micro_batches(batch, k)

    def body(carry, inputs):
      i, mb = inputs
      (_, s), g = grad_fn(params, mb, jax.random.fold_in(rng, i))
      return jax.tree.map(jnp.add, carry, (g, s)), None

    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(
        lambda: grad_fn(params, jax.tree.map(lambda x: x[0], micro), rng)))
    (grads, sums), _ = jax.lax.scan(body, (zeros[1], zeros[0][1]), (jnp.arange(k), micro))
    return grads, sums

  def _mean_grads(self, state: TrainState, batch):
    """The gradient of the per-token (per-example) mean loss of the global batch, and the sums.

    Gradients of summed losses / total weight: exactly the gradient of the
    token-weighted mean, however the batch is split over devices and micro-batches.
    """
    rng = jax.random.fold_in(state.rng, state.step)
    grads, sums = self._grads(state.params, batch, rng)
    return _divide(grads, sums['weight']), sums

  def _pmap_mean_grads(self, state: TrainState, batch):
    """`_mean_grads` for one device of the pmap step; dropout differs per device."""
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step),
                             jax.lax.axis_index('batch'))
    grads, sums = self._grads(state.params, batch, rng)
    # pmean(gradient sums) / pmean(weights): the token-weighted mean over all devices.
    grads = jax.lax.pmean(grads, 'batch')
    return _divide(grads, jax.lax.pmean(sums['weight'], 'batch')), jax.lax.psum(sums, 'batch')

  def _apply(self, state: TrainState, grads, sums):
    """The optimizer update, applied only when the loss and gradients are finite.

    A non-finite step leaves params and optimizer state as they were (the step
    counter, which is the data position, still advances) and reports
    bad_step=1; the loop stops after config.max_bad_steps of them in a row.
    """
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(sums['objective']) & jnp.isfinite(grad_norm)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
    metrics = dict(sums, learning_rate=self.schedule(state.step), grad_norm=grad_norm,
                   bad_step=1 - finite.astype(jnp.int32))
    return state.replace(step=state.step + 1, params=jax.tree.map(keep, params, state.params),
                         opt_state=jax.tree.map(keep, opt_state, state.opt_state)), metrics

  def _train_step(self, state: TrainState, batch):
    return self._apply(state, *self._mean_grads(state, batch))

  def _pmap_train_step(self, state: TrainState, batch):
    return self._apply(state, *self._pmap_mean_grads(state, batch))

  def _eval_step(self, params, batch):
    return self.task.loss_sums(params, batch, None, train=False)

  # -- helpers -----------------------------------------------------------------

  def put_batch(self, batch):
    """This process's rows -> the steps' input: global arrays, or [devices, rows/device] (pmap)."""
    if self.pmap:
      n = jax.local_device_count()
      return {k: np.asarray(v).reshape((n, -1) + np.shape(v)[1:]) for k, v in batch.items()}
    return sharding.put_batch(batch, self.mesh, self.data_shard)

  def evaluate(self, params, split: str, max_batches: int = -1) -> dict[str, float]:
    """Token/example-weighted metrics over the whole split (or max_batches).

    `params` in the steps' layout (as in the state train_step takes).
    """
    bs = self.config.eval_batch_size or self.config.batch_size
    totals: dict[str, float] = {}
    with self.context():
      for i, batch in enumerate(self.task.data.eval_batches(split, bs, self.data_shard)):
        if 0 <= max_batches <= i:
          break
        sums = jax.device_get(self.eval_step(params, self.put_batch(batch)))
        for k, v in sums.items():
          totals[k] = totals.get(k, 0.0) + float(v)
    if not totals:
      raise ValueError(f'Split {split!r} produced no evaluation batches')
    return self.task.summarize(totals)

  def restore_or_init(self, checkpointer: ckpt_lib.Checkpointer | None,
                      step: int | None = None) -> TrainState:
    """The latest (or `step`) checkpoint restored onto this mesh, or a fresh state.

    The restore target's shardings come from this experiment's mesh, whatever
    mesh (or pmap) wrote the checkpoint.
    """
    if checkpointer is not None and (step is not None or checkpointer.latest_step() is not None):
      state, meta = checkpointer.restore(self.abstract_state, step)
      log.info('Restored checkpoint at step %d from %s', int(state.step), checkpointer.directory)
      return self.replicate(state)
    state = self._init_plain()
    # A task may start a fresh run from other weights (classification: config.init_from).
    params = self.task.initial_params(state.params)
    if params is not state.params:
      state = state.replace(params=jax.device_put(params, self.state_sharding.params))
    return self.replicate(state)


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------

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


def format_metrics(metrics: dict[str, Any]) -> str:
  """`name value` pairs on one line: floats to 4 significant decimals, the rest as they are."""
  return '  '.join(f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}'
                   for k, v in metrics.items())


def _format_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}:{m:02d}:{s:02d}'


def save_config(config, workdir: str) -> None:
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2))


class TrainingError(RuntimeError):
  """Training cannot go on (a workdir in use, a diverged run); the message says why and what to do."""


class WorkdirLock:
  """One training per workdir: an exclusive lock on WORKDIR/train.lock (one file per process).

  flock is released by the OS when the process ends, however it ends (a crash
  or kill -9 included), so a stale file never blocks a new run; the file holds
  the owner's pid, host and command for the message.
  """

  def __init__(self, workdir: str):
    suffix = f'.{jax.process_index()}' if jax.process_count() > 1 else ''
    self.path = os.path.join(workdir, f'train.lock{suffix}')
    self._file = open(self.path, 'a+')
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._file.seek(0)
      owner = self._file.read().strip() or 'unknown'
      self._file.close()
      raise TrainingError(
          f'{workdir} is in use by another training process ({owner}). Wait for it to finish '
          'or stop it, or train in another --workdir.') from None
    self._file.seek(0)
    self._file.truncate()
    self._file.write(f'pid {os.getpid()} on {socket.gethostname()} since '
                     f'{time.strftime("%Y-%m-%d %H:%M:%S")}: {" ".join(sys.argv)}\n')
    self._file.flush()

  def release(self) -> None:
    if not self._file.closed:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()


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


class _Window:
  """Metrics of the steps since the last log line: sums, rates, FLOPs, memory."""

  def __init__(self, exp: Experiment, step: int):
    self.exp = exp
    self.count_flops = True
    self.dtype = jnp.dtype(exp.task.model_cfg.dtype).name
    self.metrics = []
    self.restart_clock(step)

  def restart_clock(self, step: int) -> None:
    """Times and FLOPs count from now (after compilation, after an evaluation)."""
    self.flops, self.t0, self.step0 = 0.0, time.perf_counter(), step

  def add(self, metrics, batch) -> None:
    self.metrics.append(metrics)
    if self.count_flops:   # analytic training FLOPs of this process's rows
      flops = flops_lib.batch_train_flops(self.exp.config.task, self.exp.task.model_cfg, batch)
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
    out['bad_steps'] = int(sum(int(m['bad_step']) for m in host))
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
    self.dir = os.path.join(workdir, 'profile')
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


def describe(config: ml_collections.ConfigDict, workdir: str | None) -> dict[str, Any]:
  """What a run of `config` would train: the model config after presets, parameters, FLOPs.

  Builds the task (its data source; a SentencePiece vocabulary where one is
  trained) but no parameters: shapes come from jax.eval_shape.
  """
  validation.validate(config)
  task = tasks.make_task(config, workdir)
  shapes = jax.eval_shape(lambda: task.model(train=False).init(jax.random.PRNGKey(0),
                                                               *task.init_inputs()))
  params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.meta.unbox(shapes['params'])))
  batch = task.data.train_batch(0, config.batch_size, config.seed)
  step_flops = flops_lib.batch_train_flops(config.task, task.model_cfg, batch)
  return {'model_config': task.model_cfg, 'parameters': params,
          'train_flops_per_step': step_flops,
          'batch_shapes': {k: tuple(np.shape(v)) for k, v in batch.items()}}


def dry_run(config: ml_collections.ConfigDict, workdir: str | None,
            steps: int = 3) -> dict[str, Any]:
  """Builds the experiment, compiles one train step and times `steps` more; writes nothing else.

  Returns compile seconds, the mean seconds of the timed steps, and the bytes
  of parameters and optimizer state on this process's first device.
  """
  exp = Experiment(config, workdir)
  state = exp.init_state()
  plain = exp.unreplicate(state)
  first = jax.local_devices()[0]
  out = {'params_bytes_per_device': sharding.addressable_bytes(plain.params, first),
         'opt_state_bytes_per_device': sharding.addressable_bytes(plain.opt_state, first)}
  batches = [exp.put_batch(exp.task.data.train_batch(i, config.batch_size, config.seed,
                                                     exp.data_shard)) for i in range(steps + 1)]
  with exp.context():
    t0 = time.perf_counter()
    state, metrics = exp.train_step(state, batches[0])
    jax.block_until_ready(metrics)
    out['compile_seconds'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for batch in batches[1:]:
      state, metrics = exp.train_step(state, batch)
    jax.block_until_ready(metrics)
    out['step_seconds'] = (time.perf_counter() - t0) / steps
  out['loss'] = exp.task.summarize(jax.device_get(
      {k: v for k, v in metrics.items() if k not in ('learning_rate', 'grad_norm',
                                                      'bad_step')}))['loss']
  return out


# Fields a resumed run may not change: they define the model, its data and the batches.
RESUME_FIXED = ('task', 'dataset', 'seed', 'batch_size', 'seq_len', 'vocab_size',
                'tokens_per_batch', 'model_preset', 'model', 'source_lang', 'target_lang',
                'spm_model_type', 'spm_max_sentences', 'bucket_boundaries', 'augment',
                'grad_accum_steps', 'packing')
# Fields it may change, with a warning: the optimizer and schedule.
RESUME_WARN = ('optimizer', 'learning_rate', 'schedule', 'warmup_steps', 'min_learning_rate',
               'b1', 'b2', 'eps', 'weight_decay', 'weight_decay_mask', 'grad_clip_norm',
               'label_smoothing', 'num_train_steps')


def check_resume_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Before a run resumes from WORKDIR's checkpoints: refuses model/data changes, warns of others.

  Compares `config` with WORKDIR/config.json (what the checkpoints were trained
  with). Raises ConfigError listing every changed model or data field and the
  two ways out; logs a warning listing changed optimizer or schedule fields.
  Does nothing for a fresh workdir.
  """
  path = os.path.join(workdir, 'config.json')
  ckpt_dir = os.path.join(workdir, ckpt_lib.CHECKPOINT_DIR)
  steps = (sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())
           if os.path.isdir(ckpt_dir) else [])
  if not steps:
    return
  if os.path.isfile(path):
    with open(path) as f:
      saved = json.load(f)
  else:   # config.json lost (a workdir moved while its last save was written): the meta's copy
    meta = os.path.join(ckpt_dir, str(steps[-1]), 'meta', 'metadata')
    try:
      with open(meta) as f:
        saved = json.loads(json.load(f)['config'])
    except (OSError, ValueError, KeyError, TypeError):
      log.warning('%s has checkpoints but no config.json, and checkpoint %d has no readable '
                  'config: resuming without checking that the config is the same', workdir,
                  steps[-1])
      return
    path = meta
  saved = flax.traverse_util.flatten_dict(saved, sep='.')
  now = flax.traverse_util.flatten_dict(json.loads(config.to_json_best_effort()), sep='.')
  changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
  fixed = [k for k in changed if k.split('.')[0] in RESUME_FIXED]
  warned = [k for k in changed if k.split('.')[0] in RESUME_WARN]

  def describe(keys):
    return ''.join(f'\n  - {k}: {saved.get(k)!r} -> {now.get(k)!r}' for k in keys)
  if fixed and not config.get('allow_config_change', False):
    raise ConfigError(
        f'{workdir} holds checkpoints of another model or data: these fields differ from '
        f'{path} (saved -> now):{describe(fixed)}\nTrain in a new --workdir, or resume '
        'with the new values anyway with --config.allow_config_change=True.')
  if fixed:
    log.warning('Resuming with changed model/data fields (allow_config_change=True):%s',
                describe(fixed))
  if warned:
    log.warning('Resuming with changed optimizer/schedule fields:%s', describe(warned))


def _log_to_file(workdir: str) -> logging.Handler | None:
  """Copies this project's log lines to WORKDIR/train.log (process 0)."""
  if jax.process_index() != 0:
    return None
  handler = logging.FileHandler(os.path.join(workdir, 'train.log'))
  handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))
  log.addHandler(handler)
  return handler


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at: int | None = None, command: str = '') -> dict[str, Any]:
  """Trains (resuming from WORKDIR if it has checkpoints); returns the last metrics.

  `stop_at` interrupts the run after that step as a preemption would (a
  checkpoint is saved); running again resumes it. `command`: how the run was
  launched (tools.cli.command_text), appended to WORKDIR/command.txt once the
  workdir is this run's.
  """
  os.makedirs(workdir, exist_ok=True)
  lock = WorkdirLock(workdir)
  handler = None
  try:
    check_resume_config(config, workdir)
    handler = _log_to_file(workdir)
    if command and jax.process_index() == 0:
      with open(os.path.join(workdir, 'command.txt'), 'a') as f:
        f.write(command)
    return _train(config, workdir, stop_at)
  finally:
    if handler is not None:
      log.removeHandler(handler)
      handler.close()
    lock.release()


def _train(config, workdir: str, stop_at: int | None) -> dict[str, Any]:
  for warning in validation.semantic_warnings(config):
    log.warning('Config: %s', warning)
  exp = Experiment(config, workdir)
  check_eval_split(exp, config.eval_split)
  writer = MetricWriter(workdir)
  checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, ckpt_lib.CHECKPOINT_DIR),
                                       keep=config.keep_checkpoints,
                                       async_save=config.get('async_checkpointing', True))
  state = exp.restore_or_init(checkpointer)
  save_config(config, workdir)   # only once the checkpoints (if any) restored into it
  start = int(exp.unreplicate(state.step))
  total = config.num_train_steps
  n_params = sum(x.size for x in jax.tree.leaves(exp.unreplicate(state.params)))
  log.info('Task %s on %s: %s parameters, %s parallelism, mesh %s, steps %d -> %d', config.task,
           config.dataset, f'{n_params:,}', config.parallelism, dict(exp.mesh.shape), start, total)

  stopper = _Stopper()
  profiler = _Profiler(config, workdir)
  shard = exp.data_shard   # this process's block of each global batch
  sync_every = max(1, config.get('preemption_sync_every_steps', 10))
  max_bad = config.get('max_bad_steps', 3)
  window = _Window(exp, start)
  last_eval: dict[str, float] = {}
  previous = None          # (step, metrics) of the step before: checked one step late
  bad_run: list[int] = []  # consecutive steps whose loss or gradients were not finite
  compiled = False
  step = start

  def save(step, state):
    if not bool(jax.device_get(_all_finite(state.params))):
      raise TrainingError(f'The parameters at step {step} are not finite; not saving them. '
                          f'The last checkpoint ({checkpointer.latest_step()}) is kept.')
    checkpointer.save(step, exp.unreplicate(state, to_host=True),
                      meta={'config': config.to_json_best_effort()})

  try:
    with exp.context():
      while step < total:
        profiler.before(step)
        batch = exp.task.data.train_batch(step, config.batch_size, config.seed, shard)
        with profiler.annotation(step):
          state, metrics = exp.train_step(state, exp.put_batch(batch))
        step += 1
        window.add(metrics, batch)
        profiler.after(step, metrics)
        if not compiled:
          jax.block_until_ready(metrics)
          log.info('First step (with compilation) took %.1f s', time.perf_counter() - window.t0)
          window.restart_clock(step)   # rates count from the first compiled step
          compiled = True

        # The finiteness flag of the previous step: by now it is computed, and
        # reading it does not wait for the step just dispatched.
        for s, m in ([previous] if previous else []) + ([(step, metrics)] if step == total else []):
          if int(jax.device_get(m['bad_step'])):
            bad_run.append(s)
            log.warning('step %d: the loss or gradient norm is not finite; update skipped', s)
          else:
            bad_run = []
          if len(bad_run) >= max_bad:
            raise TrainingError(
                f'Training stopped at step {s}: the loss or gradient norm was not finite for '
                f'{len(bad_run)} steps in a row (steps {bad_run[0]}-{bad_run[-1]}; '
                f'max_bad_steps={max_bad}). The last checkpoint '
                f'(step {checkpointer.latest_step()}) is kept; lower learning_rate, set '
                'grad_clip_norm, or check the data, then resume.')
        previous = (step, metrics)

        if step % config.log_every_steps == 0 or step == total:
          out = window.summarize(step)
          writer.write(step, 'train', out)
          rate = out.get('steps_per_sec')
          eta = _format_eta((total - step) / rate) if rate else '?'
          speed = f'{out.get(f"{exp.task.weight_name}_per_sec", 0.0):.0f} {exp.task.weight_name}/s'
          if 'tflops_per_device' in out:
            speed += f'  {out["tflops_per_device"]:.3g} TFLOP/s/device'
            if 'mfu' in out:
              speed += f'  MFU {100 * out["mfu"]:.1f}%'
          log.info('step %d/%d  loss %.4f  lr %.3g  %.1f ms/step  %s  ETA %s', step, total,
                   out['loss'], out['learning_rate'], out.get('step_time_ms', 0.0), speed, eta)

        if step % config.eval_every_steps == 0 or step == total:
          t_eval = time.perf_counter()
          try:
            last_eval = exp.evaluate(state.params, config.eval_split, config.eval_max_batches)
          except Exception:
            log.error('Evaluation at step %d failed; saving the checkpoint of step %d first.',
                      step, step)
            save(step, state)
            raise
          writer.write(step, config.eval_split, last_eval)
          log.info('eval %s step %d: %s', config.eval_split, step, format_metrics(last_eval))
          window.t0 += time.perf_counter() - t_eval   # evaluation time is not training time

        if stop_at is not None and step >= stop_at:
          stopper.requested = True
        # A signal seen by any process stops all of them at the same step: each
        # acts on the flag only once the processes have agreed on it.
        stop = False
        if step % sync_every == 0 or jax.process_count() == 1:
          stop = _any_process(stopper.requested, after=(state, metrics))
        if step % config.checkpoint_every_steps == 0 or step == total or stop:
          save(step, state)
          if stop:
            log.warning('Stopped at step %d after a signal; checkpoint saved.', step)
            break
  finally:
    profiler.close()
    checkpointer.close()
    writer.close()
    stopper.restore()
  return {'step': step, **last_eval}


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def setup_logging(stream=None) -> None:
  """Progress lines from this project on `stream` (default stdout; generate.py: stderr, its
  stdout carries the outputs); other libraries' chatter only at WARNING."""
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(message)s',
                      stream=stream or sys.stdout, force=True)
  log.setLevel(logging.INFO)
