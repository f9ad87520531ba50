"""The training and evaluation engine shared by every task.

`train_and_evaluate(config, workdir)` validates the config, builds the task,
mesh, optimizer and state (created directly in its shardings), resumes from
the latest checkpoint in WORKDIR, and runs the loop: one jitted train step with
explicit in/out shardings and donated state, periodic evaluation over the whole
split, checkpoints, progress lines and metrics (metrics.jsonl + TensorBoard).
SIGTERM saves a checkpoint and exits cleanly.
"""

from __future__ import annotations

import logging
import os
import signal
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

from transformer import checkpoint as ckpt_lib
from transformer import optim, sharding, tasks, validation
from transformer.experiment_config import ConfigError
from transformer.metric_writer import MetricWriter

log = logging.getLogger('transformer')


@flax.struct.dataclass
class TrainState:
  step: jax.Array          # int32 scalar: optimizer steps taken
  params: Any
  opt_state: Any
  rng: jax.Array           # uint32[2]: base key; step s uses fold_in(rng, s)


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

    self.train_step, self.eval_step = train_step, eval_step

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
    micro = jax.tree.map(lambda x: x.reshape((k, x.shape[0] // k) + x.shape[1:]), batch)

    def body(carry, inputs):
      i, mb = inputs
      (_, s), g = grad_fn(params, mb, jax.random.fold_in(rng, i))
      return jax.tree.map(jnp.add, carry, (g, s)), None

    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(
        lambda: grad_fn(params, jax.tree.map(lambda x: x[0], micro), rng)))
    (grads, sums), _ = jax.lax.scan(body, (zeros[1], zeros[0][1]), (jnp.arange(k), micro))
    return grads, sums

  def _apply(self, state: TrainState, grads, sums, weight):
    # Gradients of summed losses / total weight = gradient of the per-token mean.
    grads = jax.tree.map(lambda g: g / jnp.maximum(weight, 1.0), grads)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(sums, learning_rate=self.schedule(state.step),
                   grad_norm=optax.tree.norm(grads))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  def _train_step(self, state: TrainState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    grads, sums = self._grads(state.params, batch, rng)
    return self._apply(state, grads, sums, sums['weight'])

  def _pmap_train_step(self, state: TrainState, batch):
    """One device's part of the pmap step; dropout differs per device (axis_index)."""
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step),
                             jax.lax.axis_index('batch'))
    grads, sums = self._grads(state.params, batch, rng)
    # pmean(gradient sums) / pmean(weights): the token-weighted mean over all devices.
    grads = jax.lax.pmean(grads, 'batch')
    weight = jax.lax.pmean(sums['weight'], 'batch')
    return self._apply(state, grads, jax.lax.psum(sums, 'batch'), weight)

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


def _format_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}:{m:02d}:{s:02d}'


def save_config(config, workdir: str) -> None:
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at: int | None = None) -> dict[str, Any]:
  """Trains (resuming from WORKDIR if it has checkpoints); returns the last metrics.

  `stop_at` interrupts the run after that step as a preemption would (a
  checkpoint is saved); running again resumes it.
  """
  os.makedirs(workdir, exist_ok=True)
  exp = Experiment(config, workdir)
  save_config(config, workdir)
  writer = MetricWriter(workdir)
  checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, ckpt_lib.CHECKPOINT_DIR),
                                       keep=config.keep_checkpoints,
                                       async_save=config.get('async_checkpointing', True))
  state = exp.restore_or_init(checkpointer)
  start = int(exp.unreplicate(state.step))
  total = config.num_train_steps
  n_params = sum(x.size for x in jax.tree.leaves(exp.unreplicate(state.params)))
  log.info('Task %s on %s: %s parameters, %s parallelism, mesh %s, steps %d -> %d', config.task,
           config.dataset, f'{n_params:,}', config.parallelism, dict(exp.mesh.shape), start, total)

  stopper = _Stopper()
  shard = exp.data_shard   # this process's block of each global batch
  pending: list[dict] = []
  last_eval: dict[str, float] = {}
  t_last, step_last = time.perf_counter(), start
  t_compile = None
  step = start
  try:
    with exp.context():
      while step < total:
        batch = exp.task.data.train_batch(step, config.batch_size, config.seed, shard)
        state, metrics = exp.train_step(state, exp.put_batch(batch))
        step += 1
        pending.append(metrics)
        if t_compile is None:
          jax.block_until_ready(metrics)
          t_compile = time.perf_counter() - t_last
          log.info('First step (with compilation) took %.1f s', t_compile)
          t_last, step_last = time.perf_counter(), step

        if step % config.log_every_steps == 0 or step == total:
          host = jax.device_get(pending)
          pending = []
          sums = {k: float(np.sum([m[k] for m in host])) for k in host[0]
                  if k not in ('learning_rate', 'grad_norm')}
          out = exp.task.summarize(sums)
          out['learning_rate'] = float(host[-1]['learning_rate'])
          out['grad_norm'] = float(np.mean([m['grad_norm'] for m in host]))
          now = time.perf_counter()
          if step > step_last:
            rate = (step - step_last) / (now - t_last)
            out['steps_per_sec'] = rate
            out[f'{exp.task.weight_name}_per_sec'] = sums['weight'] / len(host) * rate
            eta = _format_eta((total - step) / rate)
          else:
            eta = '?'
          t_last, step_last = now, step
          writer.write(step, 'train', out)
          log.info('step %d/%d  loss %.4f  lr %.3g  %.2f steps/s  %.0f %s/s  ETA %s', step, total,
                   out['loss'], out['learning_rate'], out.get('steps_per_sec', 0.0),
                   out.get(f'{exp.task.weight_name}_per_sec', 0.0), exp.task.weight_name, eta)

        if step % config.eval_every_steps == 0 or step == total:
          last_eval = exp.evaluate(state.params, config.eval_split, config.eval_max_batches)
          writer.write(step, config.eval_split, last_eval)
          log.info('eval %s step %d: %s', config.eval_split, step,
                   '  '.join(f'{k} {v:.4f}' for k, v in last_eval.items()))
          t_last = time.perf_counter()  # do not count eval time in steps/s

        if stop_at is not None and step >= stop_at:
          stopper.requested = True
        if step % config.checkpoint_every_steps == 0 or step == total or stopper.requested:
          checkpointer.save(step, exp.unreplicate(state, to_host=True),
                            meta={'config': config.to_json_best_effort()})
          if stopper.requested:
            log.warning('Stopped at step %d after a signal; checkpoint saved.', step)
            break
  finally:
    checkpointer.close()
    writer.close()
    stopper.restore()
  return {'step': step, **last_eval}


def setup_logging() -> None:
  """Progress lines from this project on stdout; other libraries' chatter only at WARNING."""
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(message)s', stream=sys.stdout,
                      force=True)
  log.setLevel(logging.INFO)
