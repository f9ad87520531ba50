"""Device mesh, parallelism presets, logical axis rules, and shardings for state and batches.

Model code names logical axes only (`embed`, `mlp`, `heads`, `kv`, `vocab`,
`batch`, `length`, ...). Logical axis rules map them onto the mesh axes
`data`, `fsdp` and `tensor`; a logical axis with no rule is replicated.
`config.parallelism` names a preset (mesh sizes + rules, `PRESETS`);
`config.mesh.*` and `config.logical_axis_rules` override it. See
docs/SHARDING.md.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ('data', 'fsdp', 'tensor')
BATCH_AXES = ('data', 'fsdp')

_BATCH_RULE = ('batch', BATCH_AXES)
_FSDP_RULES = (('embed', 'fsdp'),)
_TENSOR_RULES = (('heads', 'tensor'), ('mlp', 'tensor'), ('vocab', 'tensor'))
LOCAL = 'local'  # a mesh size meaning "this process's device count"

# name -> (mesh sizes, logical axis rules). -1: the remaining devices.
PRESETS: dict[str, tuple[dict[str, int | str], tuple]] = {
    # Replicated parameters, batch split over all devices.
    'data': (dict(data=-1, fsdp=1, tensor=1), (_BATCH_RULE,)),
    # Parameters and optimizer state split over all devices along `embed`
    # (ZeRO-3 / FSDP); the batch too.
    'fsdp': (dict(data=1, fsdp=-1, tensor=1), (_BATCH_RULE, *_FSDP_RULES)),
    # Heads, the feed-forward hidden axis and the vocabulary split over all
    # devices (Megatron-style); every device sees the whole batch.
    'tensor': (dict(data=1, fsdp=1, tensor=-1), (_BATCH_RULE, *_TENSOR_RULES)),
    # FSDP within each process (host), data parallel across processes (HSDP).
    'data_fsdp': (dict(data=-1, fsdp=LOCAL, tensor=1), (_BATCH_RULE, *_FSDP_RULES)),
    # Tensor parallel in groups of 2 devices (set mesh.tensor), data parallel across groups.
    'data_tensor': (dict(data=-1, fsdp=1, tensor=2), (_BATCH_RULE, *_TENSOR_RULES)),
    # Tensor parallel in groups of 2 devices (set mesh.tensor), FSDP across groups.
    'fsdp_tensor': (dict(data=1, fsdp=-1, tensor=2),
                    (_BATCH_RULE, *_FSDP_RULES, *_TENSOR_RULES)),
    # jax.pmap over this process's devices, gradients averaged with lax.pmean.
    'pmap': (dict(data=-1, fsdp=1, tensor=1), (_BATCH_RULE,)),
}
PARALLELISM = tuple(PRESETS)

# Logical axes a preset shards only where the dimension divides (an odd-sized
# character vocabulary stays replicated rather than failing).
OPTIONAL_AXES = ('vocab',)


def resolve(config) -> tuple[dict[str, int], tuple, bool]:
  """(mesh sizes, rules, rules_from_preset) of an experiment config.

  The preset `config.parallelism` gives both; any `config.mesh.<axis>` that is
  set, and `config.logical_axis_rules` if set, replace the preset's.
  """
  preset_sizes, preset_rules = PRESETS[config.parallelism]
  sizes = dict(preset_sizes)
  for axis in MESH_AXES:
    value = config.mesh.get(axis)
    if value is not None:
      sizes[axis] = value
  sizes = {a: (jax.local_device_count() if s == LOCAL else s) for a, s in sizes.items()}
  explicit = config.get('logical_axis_rules')
  rules = rules_tuple(explicit if explicit is not None else preset_rules)
  return sizes, rules, explicit is None


def mesh_shape(sizes: dict[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves -1 ('the rest of the devices') in {axis: size} to concrete sizes."""
  shape = [int(sizes.get(a, 1)) for a in MESH_AXES]
  free = [i for i, s in enumerate(shape) if s == -1]
  if len(free) > 1:
    raise ValueError(f'At most one mesh axis may be -1, got {dict(zip(MESH_AXES, shape))}')
  fixed = math.prod(s for s in shape if s != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(f'{num_devices} devices cannot be split into mesh '
                       f'{dict(zip(MESH_AXES, shape))}: the fixed axes need a multiple of {fixed}; '
                       'change config.mesh or config.parallelism.')
    shape[free[0]] = num_devices // fixed
  if math.prod(shape) != num_devices:
    raise ValueError(f'Mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, '
                     f'but {num_devices} are available; set config.mesh sizes (one may be -1).')
  return tuple(shape)


def make_mesh(sizes: dict[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A ('data', 'fsdp', 'tensor') mesh over `devices` (default: all of them).

  Devices are ordered by process, so each process's devices hold a contiguous
  block of the batch; on TPU the order follows the physical topology.
  """
  devices = list(devices if devices is not None else jax.devices())
  shape = mesh_shape(dict(sizes), len(devices))
  devices.sort(key=lambda d: (d.process_index, d.id))
  grid = None
  if devices[0].platform == 'tpu':
    from jax.experimental import mesh_utils
    try:
      grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
    except (ValueError, NotImplementedError, AssertionError):
      grid = None
  if grid is None or not _batch_blocks_contiguous(grid, shape):
    # The physical order can give a process scattered batch blocks (a v5e-256's host holds
    # a 2x2 tile of the 16x16 torus: blocks 0, 1, 16, 17 of an fsdp axis of 256), which
    # host_batch_shard cannot feed: process order instead.
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, MESH_AXES)


def _batch_blocks_contiguous(grid: np.ndarray, shape: tuple[int, ...]) -> bool:
  """Whether every process's devices hold one contiguous block of the batch rows in this
  device grid (what host_batch_shard needs)."""
  blocks = grid.reshape(shape[0] * shape[1], -1)
  held: dict[int, set[int]] = {}
  for i, row in enumerate(blocks):
    for d in row:
      held.setdefault(d.process_index, set()).add(i)
  return all(max(b) - min(b) + 1 == len(b) for b in held.values())


def rules_tuple(rules) -> tuple[tuple[str, Any], ...]:
  """Config rules (lists from ConfigDict) as the tuple-of-pairs flax expects."""
  out = []
  for logical, mesh_axes in rules:
    if isinstance(mesh_axes, (list, tuple)):
      mesh_axes = tuple(mesh_axes)
    out.append((logical, mesh_axes))
  return tuple(out)


def logical_shardings(abstract_tree, mesh: Mesh, rules) -> Any:
  """NamedShardings for a tree whose leaves are boxed in nn.LogicallyPartitioned.

  Leaves without logical names (e.g. step counters) are replicated.
  """
  specs = nn.get_partition_spec(abstract_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, rules_tuple(rules))


def sharded_dims(abstract_tree, mesh_sizes: dict[str, int], rules):
  """Yields (path, dim, logical axis, size, mesh axes, ways) for every split dimension.

  `abstract_tree` holds nn.LogicallyPartitioned boxes (from jax.eval_shape of
  an init); `ways` is the product of the mesh axis sizes the dimension is
  split over.
  """
  rules = rules_tuple(rules)
  is_box = lambda x: isinstance(x, nn.LogicallyPartitioned)
  for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_tree, is_leaf=is_box)[0]:
    if not is_box(leaf):
      continue
    spec = nn.logical_to_mesh_axes(leaf.names, rules)
    for dim, (name, axes) in enumerate(zip(leaf.names, spec)):
      if axes is None:
        continue
      axes = axes if isinstance(axes, tuple) else (axes,)
      ways = math.prod(mesh_sizes[a] for a in axes)
      yield jax.tree_util.keystr(path), dim, name, leaf.value.shape[dim], axes, ways


def drop_indivisible(abstract_tree, mesh_sizes: dict[str, int], rules,
                     axes: Sequence[str] = OPTIONAL_AXES) -> tuple[tuple, list[str]]:
  """Removes the rules of logical `axes` whose dimensions the mesh does not divide.

  Returns (rules, notes); each note says what was left replicated and why.
  """
  bad = {}
  for _, _, name, size, mesh_axes, ways in sharded_dims(abstract_tree, mesh_sizes, rules):
    if name in axes and ways > 1 and size % ways:
      bad.setdefault(name, f'{name!r} (size {size}) is not divisible by {"x".join(mesh_axes)}'
                           f'={ways}: left replicated')
  kept = tuple(r for r in rules_tuple(rules) if r[0] not in bad)
  return kept, list(bad.values())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over data and fsdp."""
  return NamedSharding(mesh, P(BATCH_AXES))


def host_batch_shard(mesh: Mesh) -> tuple[int, int]:
  """(index, count): this process feeds block `index` of `count` equal row blocks.

  The batch is split over data x fsdp; a process feeds the rows its devices
  hold. Processes that hold the same rows (tensor parallelism across
  processes) get the same block. Raises if this process's rows are not one
  contiguous block (a device order make_mesh does not produce).
  """
  batch_ways = mesh.shape['data'] * mesh.shape['fsdp']
  blocks = mesh.devices.reshape(batch_ways, -1)   # row block -> its devices
  mine = sorted({i for i, row in enumerate(blocks)
                 for d in row if d.process_index == jax.process_index()})
  if not mine:
    raise ValueError(f'Process {jax.process_index()} has no device in mesh {dict(mesh.shape)}')
  per = len(mine)
  if mine != list(range(mine[0], mine[0] + per)) or mine[0] % per or batch_ways % per:
    raise ValueError(f'The devices of process {jax.process_index()} hold batch blocks {mine} of '
                     f'{batch_ways}, which are not one contiguous block; build the mesh with '
                     'sharding.make_mesh (devices ordered by process).')
  return mine[0] // per, batch_ways // per


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh,
              shard: tuple[int, int] | None = None) -> dict[str, jax.Array]:
  """Assembles each host's local rows into global arrays laid out over data/fsdp.

  `shard` is this process's (index, count) block of the global batch
  (`host_batch_shard`, the default).
  """
  sharding = batch_sharding(mesh)
  _, count = shard if shard is not None else host_batch_shard(mesh)
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    out[k] = jax.make_array_from_process_local_data(
        sharding, v, (v.shape[0] * count,) + v.shape[1:])
  return out


@contextlib.contextmanager
def mesh_context(mesh: Mesh | None, rules):
  """The mesh (if any) and the logical axis rules, for jitting and running steps."""
  with contextlib.ExitStack() as stack:
    if mesh is not None:
      stack.enter_context(jax.set_mesh(mesh))
    stack.enter_context(nn.logical_axis_rules(rules_tuple(rules)))
    yield


def addressable_bytes(tree, device: jax.Device | None = None) -> int:
  """Bytes of `tree`'s arrays held on `device` (default: this process's first device)."""
  device = device or jax.local_devices()[0]
  total = 0
  for x in jax.tree.leaves(tree):
    for shard in x.addressable_shards:
      if shard.device == device:
        total += shard.data.nbytes
  return total
