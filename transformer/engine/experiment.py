"""The Experiment: everything built from a config to train and evaluate it.

The task, the mesh and logical axis rules, the optimizer and schedule, the
state's shardings (the state is created directly in them), and the jitted
steps: the train step (gradient accumulation, skipping non-finite updates),
the gradients alone, and the evaluation step, run over a whole split by
`evaluate`. With `config.parallelism='pmap'` the same step functions are
`jax.pmap`ped over this process's devices (docs/SHARDING.md).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from transformer import optim, sharding, tasks, validation
from transformer import workdir as workdir_lib
from transformer.errors import ConfigError

log = logging.getLogger('transformer')


@flax.struct.dataclass
class TrainState:
  step: jax.Array          # int32 scalar: optimizer steps taken
  params: Any
  opt_state: Any
  rng: jax.Array           # uint32[2]: base key; step s uses fold_in(rng, s)


def all_finite(tree) -> jax.Array:
  """True when every floating-point element of `tree` is finite (integers always are)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


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
    self._sum_steps = {}   # split_sums: a compiled step per function
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

  def _build_pmap(self, abstract):
    self._local_mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()), ('batch',))
    replicated = jax.sharding.NamedSharding(self._local_mesh, jax.sharding.PartitionSpec())
    self.state_sharding = jax.tree.map(lambda _: replicated, nn.meta.unbox(abstract))
    self.data_shard = (jax.process_index(), jax.process_count())
    p_train = jax.pmap(functools.partial(self._train_step, axis='batch'), axis_name='batch',
                       donate_argnums=0)

    def train_step(state, batch):   # metrics are psummed: every device holds the same
      state, metrics = p_train(state, batch)
      return state, self.unreplicate(metrics)

    p_grads = jax.pmap(functools.partial(self._mean_grads, axis='batch'), axis_name='batch')
    self.train_step = train_step
    self.gradients = lambda state, batch: self.unreplicate(p_grads(state, batch))

  # -- state -------------------------------------------------------------------

  def _init_state_boxed(self, seed_key):
    """The initial state from the config's seed: the parameter init and the step keys
    (dropout, masking) are two halves of one split, never the same key."""
    init_key, step_key = jax.random.split(seed_key)
    model = self.task.model(train=False)
    params = model.init({'params': init_key}, *self.task.init_inputs())['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=self.optimizer.init(params), rng=step_key)

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

  @contextlib.contextmanager
  def context(self):
    """The mesh and logical axis rules the steps run under (no mesh for pmap), and the
    config's matmul_precision (anything but 'default' holds while steps are traced)."""
    precision = self.config.get('matmul_precision', 'default')
    with sharding.mesh_context(None if self.pmap else self.mesh, self.rules):
      if precision == 'default':
        yield
      else:
        with jax.default_matmul_precision(precision):
          yield

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

  def _mean_grads(self, state: TrainState, batch, axis: str | None = None):
    """The gradient of the per-token (per-example) mean loss of the global batch, and the sums.

    Gradients of summed losses / total weight: exactly the gradient of the
    token-weighted mean, however the batch is split over devices and
    micro-batches. `axis`: the pmap axis this runs under (one device's rows:
    its own dropout key; gradients and weights averaged over the devices).
    """
    rng = jax.random.fold_in(state.rng, state.step)
    if axis:
      rng = jax.random.fold_in(rng, jax.lax.axis_index(axis))
    grads, sums = self._grads(state.params, batch, rng)
    if not axis:
      return _divide(grads, sums['weight']), sums
    # pmean(gradient sums) / pmean(weights): the token-weighted mean over all devices.
    grads = jax.lax.pmean(grads, axis)
    return _divide(grads, jax.lax.pmean(sums['weight'], axis)), jax.lax.psum(sums, axis)

  def _apply(self, state: TrainState, grads, sums):
    """The optimizer update, applied only when the loss, the gradients and the updated
    parameters are all finite.

    A bad step leaves params and optimizer state as they were (the step
    counter, which is the data position, still advances) and reports it in
    bad_step: 1 when the loss or gradient norm is not finite, 2 when they are
    but the update would make a parameter non-finite (an overflow: the step
    that caused it is named, not the steps after it). The loop stops after
    config.max_bad_steps bad steps in a row.
    """
    grad_norm = optax.tree.norm(grads)
    grads_ok = jnp.isfinite(sums['objective']) & jnp.isfinite(grad_norm)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = grads_ok & all_finite(params)
    keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
    bad_step = jnp.where(finite, 0, jnp.where(grads_ok, 2, 1)).astype(jnp.int32)
    metrics = dict(sums, learning_rate=self.schedule(state.step), grad_norm=grad_norm,
                   bad_step=bad_step)
    return state.replace(step=state.step + 1, params=jax.tree.map(keep, params, state.params),
                         opt_state=jax.tree.map(keep, opt_state, state.opt_state)), metrics

  def _train_step(self, state: TrainState, batch, axis: str | None = None):
    return self._apply(state, *self._mean_grads(state, batch, axis))

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

    `params` in the plain layout (as checkpoints hold them; pmap: replicated here).
    """
    totals = self.split_sums(self._eval_step, params, split, max_batches)
    if not totals:
      raise ValueError(f'Split {split!r} produced no evaluation batches')
    return self.task.summarize({k: float(v) for k, v in totals.items()})

  def split_sums(self, fn, params, split: str, max_batches: int = -1) -> dict[str, np.ndarray]:
    """`fn(params, batch)` -> {name: array}, summed over every batch of `split` (or
    max_batches) with the steps' shardings and this process's rows: the loss sums of
    `evaluate`, and what a task's evaluator adds up over a split (classification: the
    confusion matrix). One compiled step per function.

    `params` in the plain layout (pmap: replicated here, and the sums psummed).
    """
    if fn not in self._sum_steps:
      if self.pmap:
        p_fn = jax.pmap(lambda p, b: jax.lax.psum(fn(p, b), 'batch'), axis_name='batch')
        self._sum_steps[fn] = lambda p, b: self.unreplicate(p_fn(p, b))
      else:
        self._sum_steps[fn] = jax.jit(fn, in_shardings=(self.state_sharding.params,
                                                        self.batch_sharding))
    step = self._sum_steps[fn]
    params = self.replicate(params)
    bs = self.config.eval_batch_size or self.config.batch_size
    totals: dict[str, np.ndarray] = {}
    with self.context():
      for i, batch in enumerate(self.task.data.eval_batches(split, bs, self.data_shard)):
        if 0 <= max_batches <= i:
          break
        for k, v in jax.device_get(step(params, self.put_batch(batch))).items():
          v = np.asarray(v, np.float64)
          totals[k] = totals[k] + v if k in totals else v
    return totals

  def restore_or_init(self, checkpointer=None, step: int | None = None) -> TrainState:
    """The newest good (or `step`) checkpoint of `checkpointer`, in the steps' layout; a fresh
    state when it holds none (training's first start).

    The restore target's shardings come from this experiment's mesh, whatever
    mesh (or pmap) wrote the checkpoint. Only training may start fresh:
    everything that reads a trained model calls `workdir.restore`, which
    raises when there is nothing to restore.
    """
    if checkpointer is not None and (step is not None or checkpointer.latest_step() is not None):
      state, _, _ = workdir_lib.restore(checkpointer.directory, self.abstract_state, step,
                                        checkpointer=checkpointer)
      return self.replicate(state)
    state = self._init_plain()
    # A fresh run may start from other weights (config.init_from: transformer/pretrained.py).
    params = self.task.initial_params(state.params)
    if params is not state.params:
      state = state.replace(params=jax.device_put(params, self.state_sharding.params))
    return self.replicate(state)

