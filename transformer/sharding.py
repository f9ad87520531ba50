"""Device mesh, logical axis rules, and shardings for state and batches.

Model code names logical axes only (`embed`, `mlp`, `heads`, `kv`, `vocab`,
`batch`, `length`, ...). The config's `logical_axis_rules` map them onto the
mesh axes `data`, `fsdp` and `tensor`; a logical axis with no rule is
replicated. See docs/ARCHITECTURE.md.
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


def mesh_shape(sizes: dict[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves -1 ('the rest of the devices') in {axis: size} to concrete sizes."""
  shape = [int(sizes.get(a, 1)) for a in MESH_AXES]
  free = [i for i, s in enumerate(shape) if s == -1]
  if len(free) > 1:
    raise ValueError(f'At most one mesh axis may be -1, got {dict(zip(MESH_AXES, shape))}')
  fixed = math.prod(s for s in shape if s != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(f'{num_devices} devices cannot be split into mesh {sizes}')
    shape[free[0]] = num_devices // fixed
  if math.prod(shape) != num_devices:
    raise ValueError(f'Mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, '
                     f'but {num_devices} are available; set config.mesh sizes (one may be -1).')
  return tuple(shape)


def make_mesh(sizes: dict[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  devices = list(devices if devices is not None else jax.devices())
  shape = mesh_shape(dict(sizes), len(devices))
  return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


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


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over data and fsdp."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each host's local rows into global arrays laid out over data/fsdp."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


@contextlib.contextmanager
def mesh_context(mesh: Mesh | None, rules):
  """The mesh (if any) and the logical axis rules, for jitting and running steps."""
  with contextlib.ExitStack() as stack:
    if mesh is not None:
      stack.enter_context(jax.set_mesh(mesh))
    stack.enter_context(nn.logical_axis_rules(rules_tuple(rules)))
    yield
