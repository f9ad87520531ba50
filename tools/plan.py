"""Will it fit? Compile a config's train step for a device topology, without the devices.

  python -m tools.plan --config=configs/lm_shakespeare_char.py --topology=v5e:2x2 \\
      [--config.parallelism=fsdp] [--config.FIELD=VALUE ...] [--require_fit] [--json=FILE]
  python -m tools.plan --config=... --topology=cpu:8       # forced CPU devices, anywhere
  python -m tools.plan --config=... --topology=v5e:4x4 --compare   # every preset, ranked

Builds the real Experiment (the train step train.py compiles: optimizer, gradient
accumulation, remat, donation, shardings) on the topology's devices with abstract state and
batch (no parameter is made), compiles it ahead of time, and reports per device:

- bytes of parameters, optimizer state and the batch (from their shardings), and XLA's own
  memory analysis of the compiled step (arguments, outputs, temporaries; donated buffers
  counted once), against the chip's memory (CHIPS): fits, or does not fit by N GiB;
- FLOPs per step per device from the compiled cost analysis, beside this library's analytic
  count (transformer/flops.py: matrix products only);
- the collectives in the compiled program: kind, count and the bytes of their results;
- where the backend's cost model gives one (TPU), the estimated step time and from it tokens
  per second, MFU and the time to config.num_train_steps: an estimate of XLA's cost model,
  not a measurement.

TPU topologies ('v5e:2x2', 'v4:2x2x4', 'v5p:2x2x2', 'v6e:4x4', ...) compile through libtpu,
deviceless: `pip install -r requirements-tpu.txt`. GPU targets ('h100:8', 'h200:16': hosts
of 8) compile deviceless through the CUDA plugin (`pip install "jax[cuda13]==0.10.2"`, about
4 GB, so not in CI) from XLA target configs written here (GPUS); XLA's GPU compiler gives
memory but no cost analysis (no FLOPs, no step estimate). 'cpu:N' uses N forced CPU devices
(the flag is set before JAX starts).

The task is built as train.py builds it, its vocabulary and first batch from the data, where
the data is readable here. Where it is not (WMT14, LM1B, ImageNet on a laptop), or with
--shapes_only, the batch has the shapes the config implies (transformer/data/shapes.py: the
vocabulary from config.vocab_size, the image size and classes from the dataset's table,
translation at its longest bucket or fully packed rows); the report says which, and what
the shapes assume.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Sequence

GIB = 1024 ** 3
TPU_INSTALL = 'pip install -r requirements-tpu.txt   (jax[tpu] matching this jax: libtpu)'

# Memory per chip (HBM), from Google Cloud's TPU system architecture pages (v4, v5e, v5p,
# v6e), and the common GPUs' data sheets. `device_kind` substrings, longest match first.
CHIPS = {
    'TPU v4': (32 * GIB, 'Cloud TPU v4: 32 GiB HBM2 per chip'),
    'TPU v5 lite': (16 * GIB, 'Cloud TPU v5e: 16 GiB HBM2 per chip'),
    'TPU v5': (95 * GIB, 'Cloud TPU v5p: 95 GiB HBM2e per chip'),
    'TPU v6 lite': (32 * GIB, 'Cloud TPU v6e (Trillium): 32 GiB HBM per chip'),
    'H100': (80 * GIB, 'NVIDIA H100 SXM: 80 GB HBM3'),
    'H200': (141 * GIB, 'NVIDIA H200: 141 GB HBM3e'),
    'A100': (80 * GIB, 'NVIDIA A100 80GB'),
}
# Bandwidths per chip for the roofline estimate: (HBM bytes/s, collective bytes/s, source).
# (GPUs: used where the compiled program has a cost analysis, i.e. compiled on a real GPU;
# the deviceless CUDA compile gives none.)
# HBM from the same pages; the collective bandwidth is each page's all-reduce bandwidth per
# pod divided by the pod's chips (v4: 1.1 PB/s over 4096; v5e: 51.2 TB/s over 256; v6e:
# 102.4 TB/s over 256), for v5p (no such figure) its 4800 Gbps inter-chip interconnect.
BANDWIDTH = {
    'TPU v4': (1200e9, 1.1e15 / 4096, 'Cloud TPU v4: HBM 1200 GBps; all-reduce 1.1 PB/s per '
               '4096-chip pod'),
    'TPU v5 lite': (819e9, 51.2e12 / 256, 'Cloud TPU v5e: HBM 819 GBps; all-reduce 51.2 TB/s '
                    'per 256-chip pod'),
    'TPU v5': (2765e9, 4800e9 / 8, 'Cloud TPU v5p: HBM 2765 GBps; ICI 4800 Gbps'),
    'TPU v6 lite': (1638e9, 102.4e12 / 256, 'Cloud TPU v6e: HBM 1638 GBps; all-reduce '
                    '102.4 TB/s per 256-chip pod'),
    # NVIDIA's data sheets (SXM): HBM, and half of NVLink's 900 GB/s (both directions).
    'H100': (3.35e12, 450e9, 'NVIDIA H100 SXM: HBM3 3.35 TB/s; NVLink 900 GB/s'),
    'H200': (4.8e12, 450e9, 'NVIDIA H200: HBM3e 4.8 TB/s; NVLink 900 GB/s'),
}
GPU_INSTALL = 'pip install "jax[cuda13]==0.10.2"   (the CUDA plugin and libraries, about 4 GB)'


def _gpu_target(name: str, memory: int, bandwidth: int) -> str:
  """XLA's GpuTargetConfig (text proto) of a Hopper GPU: 132 SMs at 1.98 GHz, compute
  capability 9.0 (NVIDIA's H100 SXM and H200 data sheets), `memory` bytes at `bandwidth`
  bytes/s, CUDA 13.0 and cuDNN 9.7 as the plugin's runtime."""
  return f'''gpu_device_info {{
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152
  shared_memory_per_core: 233472 threads_per_core_limit: 2048 core_count: 132
  fpus_per_core: 128 block_dim_limit_x: 2147483647 block_dim_limit_y: 65535
  block_dim_limit_z: 65535 memory_bandwidth: {bandwidth} l2_cache_size: 52428800
  clock_rate_ghz: 1.98 device_memory_size: {memory} shared_memory_per_block_optin: 232448
  cuda_compute_capability {{ major: 9 }} registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}}
platform_name: "CUDA"
dnn_version_info {{ major: 9 minor: 7 }}
runtime_version {{ major: 13 minor: 0 patch: 0 }}
device_description_str: "{name}"
'''


# GPU kinds for --topology=KIND:N: (XLA target config, memory bytes). The H100's memory is
# what an H100 80GB HBM3 reports (79.1 GiB); the H200's is its data sheet's 141 GB.
GPUS = {
    'h100': (_gpu_target('NVIDIA H100 80GB HBM3', 84929347584, 3352320000000), 84929347584),
    'h200': (_gpu_target('NVIDIA H200', 141 * 10**9, 4800 * 10**9), 141 * 10**9),
}
TPU_PREFIXES = ('v2', 'v3', 'v4', 'v5e', 'v5litepod', 'v5p', 'v6e')
COLLECTIVES = ('all-reduce', 'all-gather', 'reduce-scatter', 'all-to-all', 'collective-permute')
DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'bf16': 2, 'f16': 2, 's16': 2, 'u16': 2,
               'f32': 4, 's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8, 'c64': 8}


class PlanError(ValueError):
  """A topology or setting the plan cannot use; the message says what to change."""


# ----------------------------------------------------------------------------- topologies

def parse_topology(name: str) -> tuple[str, int | None]:
  """('cpu', N) or ('tpu', None) for a TPU topology name; PlanError for anything else."""
  if name.startswith('cpu:'):
    count = name.split(':', 1)[1]
    if not count.isdigit() or int(count) < 1:
      raise PlanError(f'--topology={name}: cpu:N needs a positive device count, e.g. cpu:8')
    return 'cpu', int(count)
  if re.fullmatch(r'(%s):\d+(x\d+){1,2}' % '|'.join(TPU_PREFIXES), name):
    return 'tpu', None
  m = re.fullmatch(r'(%s):(\d+)' % '|'.join(GPUS), name)
  if m:
    count = int(m.group(2))
    if count < 1 or (count > 8 and count % 8):
      raise PlanError(f'--topology={name}: up to 8 GPUs on one host, or a multiple of 8 '
                      '(hosts of 8)')
    return 'gpu', count
  raise PlanError(f'unknown topology {name!r}: use cpu:N (forced CPU devices) or a TPU '
                  'topology such as v5e:2x2, v5e:16x16, v4:2x2x4, v5p:2x2x2, v6e:4x4 '
                  f'(generations: {", ".join(TPU_PREFIXES)}), or GPUs: '
                  f'{", ".join(g + ":8" for g in GPUS)}')


def prepare_environment(name: str) -> None:
  """Before JAX starts: N forced CPU devices for cpu:N."""
  kind, count = parse_topology(name)
  # The compile needs no backend of the target: JAX runs on the CPU, and a TPU topology is
  # described by libtpu without initializing it as a backend (which would look for chips and
  # take libtpu's lock file).
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  if kind == 'cpu':
    flags = re.sub(r'--xla_force_host_platform_device_count=\d+', '',
                   os.environ.get('XLA_FLAGS', ''))
    os.environ['XLA_FLAGS'] = f'{flags} --xla_force_host_platform_device_count={count}'.strip()


def topology_devices(name: str) -> list:
  import jax
  kind, count = parse_topology(name)
  if kind == 'cpu':
    devices = jax.devices('cpu')
    if len(devices) < count:
      raise PlanError(f'--topology={name} needs {count} CPU devices and this process has '
                      f'{len(devices)}: start it with XLA_FLAGS=--xla_force_host_platform_'
                      f'device_count={count} (python -m tools.plan does that itself)')
    return devices[:count]
  import importlib.util
  if kind == 'gpu':
    return _gpu_devices(name, count)
  if importlib.util.find_spec('libtpu') is None:
    raise PlanError(f'--topology={name} compiles for TPU through libtpu, which is not '
                    f'installed: {TPU_INSTALL}')
  from jax.experimental import topologies
  # A deviceless description touches no chip: let plans run side by side (libtpu otherwise
  # takes /tmp/libtpu_lockfile, and a second process fails with "ABORTED").
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  try:
    return list(topologies.get_topology_desc(platform='tpu', topology_name=name).devices)
  except Exception as e:   # libtpu's own message (an unknown chip count, ...)
    raise PlanError(f'--topology={name}: libtpu could not describe it: '
                    f'{" ".join(str(e).split())[:300]}') from None


def _gpu_devices(name: str, count: int) -> list:
  """`count` GPUs of a kind, described to XLA's CUDA compiler by a target config (no GPU
  needed; the CUDA plugin must be installed: jax[cuda13] matching this jax, about 4 GB)."""
  from jax.experimental import topologies
  kind = name.split(':')[0]
  hosts, per_host = (1, count) if count <= 8 else (count // 8, 8)
  try:
    return list(topologies.get_topology_desc(platform='cuda', target_config=GPUS[kind][0],
                                             topology=f'1x{hosts}x{per_host}').devices)
  except Exception as e:
    raise PlanError(f'--topology={name} compiles for CUDA without a GPU through the CUDA '
                    f'plugin, which could not describe it ({" ".join(str(e).split())[:200]}): '
                    f'{GPU_INSTALL}') from None


def devices_per_chip(devices) -> int:
  """How many of `devices` share a chip: 2 for libtpu's deviceless v4 topologies, which
  give each TensorCore its own device (JAX on a real v4 joins them, megacore); else 1."""
  import collections
  coords = collections.Counter(tuple(getattr(d, 'coords', ())) + (getattr(d, 'slice_index', 0),)
                               for d in devices if getattr(d, 'coords', None) is not None)
  return max(coords.values()) if coords else 1


def chip_memory(device, count: int = 1, per_chip: int = 1) -> tuple[int | None, str]:
  """(bytes, source) of one device's memory; CPU devices share the machine's RAM; a device
  that is one of `per_chip` TensorCores of a chip has that share of its memory."""
  kind = getattr(device, 'device_kind', '')
  for gpu, (_, memory) in GPUS.items():
    if gpu.upper() in kind:
      return memory, f'{kind}: {memory / GIB:.1f} GiB (the target config given to XLA)'
  hits = sorted((k for k in CHIPS if k.lower() in kind.lower()), key=len, reverse=True)
  if hits:
    memory, source = CHIPS[hits[0]]
    if per_chip > 1:
      return memory // per_chip, (f'{source}, shared by its {per_chip} TensorCores, each a '
                                  'device of this topology')
    return memory, source
  if device.platform == 'cpu':
    with open('/proc/meminfo') as f:
      total = next(int(line.split()[1]) * 1024 for line in f if line.startswith('MemTotal'))
    return total // count, (f'this machine\'s {total / GIB:.1f} GiB of RAM shared by '
                            f'{count} CPU device(s)')
  return None, f'unknown memory for {kind!r}'


# ----------------------------------------------------------------------------- measuring

def per_device_bytes(tree) -> int:
  """Bytes of the largest shard set one device holds of `tree`'s abstract arrays."""
  import jax
  import numpy as np
  totals: dict[Any, int] = {}
  for x in jax.tree.leaves(tree):
    itemsize = np.dtype(x.dtype).itemsize
    for device, index in x.sharding.devices_indices_map(x.shape).items():
      n = 1
      for dim, sl in zip(x.shape, index):
        start, stop, _ = sl.indices(dim)
        n *= stop - start
      totals[device] = totals.get(device, 0) + n * itemsize
  return max(totals.values()) if totals else 0


_OP = re.compile(r'\s(%s)(-start)?\(' % '|'.join(COLLECTIVES))
_GROUPS_LIST = re.compile(r'replica_groups=\{\{([\d,]*)\}')
_GROUPS_IOTA = re.compile(r'replica_groups=\[([\d,]+)\]<=')
_SHAPE = re.compile(r'\b(pred|[sufc]\d+|bf16)\[([\d,]*)\]')


def _group_size(rhs: str, devices: int) -> int:
  """The devices in each replica group of a collective's HLO line (all of them when the
  groups are not given)."""
  m = _GROUPS_LIST.search(rhs)
  if m:
    return len(m.group(1).split(',')) if m.group(1) else devices
  m = _GROUPS_IOTA.search(rhs)
  return int(m.group(1).split(',')[-1]) if m else devices


def _traffic(kind: str, size: int, n: int) -> float:
  """Bytes one device sends in a ring implementation of collective `kind` whose result is
  `size` bytes, over groups of `n` devices."""
  if n <= 1:
    return 0.0
  share = (n - 1) / n
  return {'all-reduce': 2 * share * size, 'all-gather': share * size,
          'reduce-scatter': (n - 1) * size, 'all-to-all': share * size}.get(kind, float(size))


_WHILE_BODY = re.compile(r'\swhile\(.*?body=%([\w.\-]+)')
_COMPUTATION = re.compile(r'^(?:ENTRY )?%([\w.\-]+) \(')


def loop_bodies(hlo_text: str) -> set[str]:
  """The names of the computations that while loops of a compiled HLO module run."""
  return set(_WHILE_BODY.findall(hlo_text))


def collectives(hlo_text: str, devices: int = 1, trips: int = 1) -> dict[str, dict[str, float]]:
  """{kind: {'count', 'bytes', 'traffic'}} of the collectives a step of a compiled HLO
  module's text runs: bytes are those of each op's result (a tuple's elements summed; an
  async pair counted once, at its start); traffic, the bytes a device sends for them in ring
  implementations over their replica groups (`devices`: the group where none is given).
  Collectives in a while loop's body count `trips` times (the gradient-accumulation loop
  runs grad_accum_steps times; the text holds its body once)."""
  bodies = loop_bodies(hlo_text) if trips > 1 else set()
  out: dict[str, dict[str, int]] = {}
  times = 1
  for line in hlo_text.splitlines():
    head = _COMPUTATION.match(line)
    if head:
      times = trips if head.group(1) in bodies else 1
      continue
    lhs, eq, rhs = line.partition(' = ')
    m = _OP.search(rhs) if eq else None
    if not m:
      continue
    size = 0
    for dtype, dims in _SHAPE.findall(rhs[:m.start()]):   # the result's shape(s)
      n = 1
      for d in (dims.split(',') if dims else []):
        n *= int(d)
      size += n * DTYPE_BYTES.get(dtype, 4)
    entry = out.setdefault(m.group(1), {'count': 0, 'bytes': 0, 'traffic': 0.0})
    entry['count'] += times
    entry['bytes'] += times * size
    entry['traffic'] += times * _traffic(m.group(1), size, _group_size(rhs, devices))
  return out


def memory_totals(mem) -> dict[str, int]:
  """A compiled program's memory analysis per device: arguments, outputs (and how many of
  them alias donated arguments), temporaries, code, and their total (aliases counted once)."""
  out = {'argument_bytes': int(mem.argument_size_in_bytes),
         'output_bytes': int(mem.output_size_in_bytes),
         'alias_bytes': int(mem.alias_size_in_bytes),
         'temp_bytes': int(mem.temp_size_in_bytes),
         'code_bytes': int(mem.generated_code_size_in_bytes)}
  out['total_bytes'] = (out['argument_bytes'] + out['output_bytes'] - out['alias_bytes']
                        + out['temp_bytes'] + out['code_bytes'])
  return out


def planning_task(config, shapes_only: bool = False):
  """(task, batch, how): the task train.py would build, with its first training batch, when
  the data is readable here (and not `shapes_only`); else the task on its batch shapes
  alone (transformer/data/shapes.py), and `how` says why and what the shapes assume."""
  from transformer import tasks
  from transformer.engine.inspect import scratch_task
  from transformer.errors import DataError
  why = 'asked (--shapes_only)'
  if not shapes_only:
    try:
      with scratch_task(config, None) as task:
        step = _longest_step(task.data, config)
        return (task, task.data.train_batch(step, config.batch_size, config.seed),
                f'the data (training batch {step})')
    except DataError as e:
      message = ' '.join(str(e).split())
      why = 'the data is not readable here: ' + (message if len(message) <= 120 else
                                                 message[:120] + '...')
  data = tasks.task_class(config).shape_data(config)
  task = tasks.make_task(config, None, data=data)
  batch = data.train_batch(0, config.batch_size, config.seed)
  return task, batch, f'shapes from the config ({why}); {data.assumption}'


def _longest_step(data, config) -> int:
  """The first step of epoch 0 whose batch has the longest bucket, for data bucketed by
  length (translation; the longest rows need the most attention memory for the same
  tokens per batch); else 0."""
  if not hasattr(data, 'epoch_batches') or getattr(data, 'packing', True):
    return 0
  lengths = [length for length, _ in data.epoch_batches(config.seed, 0, config.batch_size)]
  return lengths.index(max(lengths))


def plan(config, topology: str, chip_memory_bytes: int | None = None,
         shapes_only: bool = False) -> dict[str, Any]:
  """The plan of `config` on `topology` (see the module docstring), as a dict."""
  import jax
  import numpy as np

  from transformer import flops as flops_lib
  from transformer.engine import Experiment
  devices = topology_devices(topology)
  per_chip = devices_per_chip(devices)
  task, batch, batch_source = planning_task(config, shapes_only)
  exp = Experiment(config, None, devices=devices, task=task)
  analytic = float(task.train_flops(batch))
  abstract_batch = {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype,
                                            sharding=exp.batch_sharding)
                    for k, v in batch.items()}
  with exp.context():
    lowered = exp.train_step.lower(exp.abstract_state, abstract_batch)
    try:
      compiled = lowered.compile()
      oom = None
    except Exception as e:   # XLA's TPU compiler refuses a program that cannot fit
      oom = out_of_memory(str(e))
      if oom is None:
        raise
      compiled = None
  mem = compiled.memory_analysis() if compiled else None
  cost = compiled.cost_analysis() if compiled else {}
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  n = len(devices)
  state = exp.abstract_state
  out: dict[str, Any] = {
      'topology': topology, 'devices': n, 'device_kind': devices[0].device_kind,
      'devices_per_chip': per_chip,
      'parallelism': config.parallelism, 'mesh': dict(exp.mesh.shape),
      'params_bytes': per_device_bytes(state.params),
      'opt_state_bytes': per_device_bytes(state.opt_state),
      'batch_bytes': per_device_bytes(list(abstract_batch.values())),
      'batch_source': batch_source,
      'batch_shapes': {k: list(v.shape) for k, v in abstract_batch.items()},
  }
  if mem is not None:
    out.update(memory_totals(mem))
  if oom:   # no compiled program: its arguments from the shardings, XLA's temporaries
    out.update(compile_error=oom['message'], argument_bytes=out['params_bytes']
               + out['opt_state_bytes'] + out['batch_bytes'], temp_bytes=oom['temp_bytes'])
    out['total_bytes'] = out['argument_bytes'] + out['temp_bytes']
  memory, source = ((chip_memory_bytes, 'given') if chip_memory_bytes else
                    chip_memory(devices[0], len(devices), per_chip))
  out['chip_memory_bytes'], out['chip_memory_source'] = memory, source
  if memory and 'total_bytes' in out:
    out['fits'] = out['total_bytes'] <= memory
    out['overflow_gib'] = max(0.0, (out['total_bytes'] - memory) / GIB)
  text = compiled.as_text() if compiled else ''
  # XLA's cost analysis counts a while loop's body once: with gradient accumulation (the
  # step's one loop) its FLOPs and bytes are scaled by the trip count. The update outside
  # the loop is scaled with them, a slight over-estimate.
  scale = config.grad_accum_steps if loop_bodies(text) else 1
  out['cost_scaled_by'] = scale
  out['flops_per_device_compiled'] = float(cost['flops']) * scale if cost.get('flops') else None
  out['flops_per_device_analytic'] = analytic / n
  out['collectives'] = collectives(text, n, config.grad_accum_steps)
  xla = cost.get('optimal_seconds')
  if xla and xla > 0:   # XLA's TPU cost model; negative (no estimate) on larger programs
    out['xla_optimal_seconds'] = float(xla)
  out['roofline'] = roofline(devices[0].device_kind, per_chip, out['flops_per_device_compiled'],
                             cost.get('bytes accessed', 0.0) * scale, out['collectives'])
  seconds = out['roofline']['seconds'] if out['roofline'] else out.get('xla_optimal_seconds')
  if seconds:
    weight = float(np.sum(batch['weights'])) if 'weights' in batch else float(config.batch_size)
    out['estimated_step_seconds'] = seconds
    out['estimated_examples_or_tokens_per_second'] = weight / seconds
    peak = flops_lib.peak_flops(devices[0].device_kind, 'bfloat16')
    if peak:
      out['estimated_mfu'] = analytic / seconds / (peak * n / per_chip)   # peak is a chip's
    out['estimated_seconds_to_num_train_steps'] = seconds * config.num_train_steps
  return out


_OOM_TEMPS = re.compile(r'required for HLO temporaries \(([\d.]+)([KMGT]?)\)')
_OOM_USED = re.compile(r'[Uu]sed ([\d.]+)([KMGT]?) of ([\d.]+)([KMGT]?) hbm')
_UNITS = {'': 1, 'K': 2**10, 'M': 2**20, 'G': 2**30, 'T': 2**40}


def out_of_memory(message: str) -> dict[str, Any] | None:
  """{'message', 'temp_bytes'} when `message` is XLA's compiler refusing a program for want
  of device memory (RESOURCE_EXHAUSTED), with the temporaries it says the program needs
  (0 where it does not say); else None."""
  if 'RESOURCE_EXHAUSTED' not in message and 'Ran out of memory' not in message:
    return None
  line = next((ln.strip() for ln in message.splitlines() if 'memory' in ln.lower()),
              message.strip().splitlines()[0] if message.strip() else '')
  m = _OOM_TEMPS.search(message) or _OOM_USED.search(message)
  temps = int(float(m.group(1)) * _UNITS[m.group(2)]) if m else 0
  return {'message': line[:300], 'temp_bytes': temps}


def roofline(kind: str, per_chip: int, flops: float | None, bytes_accessed: float | None,
             colls: dict[str, dict[str, float]]) -> dict[str, Any] | None:
  """A step's time from the compiled program's cost analysis, per device: its FLOPs at the
  chip's bf16 peak or its bytes accessed at the HBM bandwidth, whichever is slower, plus
  its collective traffic at the chip's collective bandwidth (BANDWIDTH; no overlap of
  communication with compute). None where a figure is missing: CPUs, and the deviceless GPU
  compile (no cost analysis; compiled on a real GPU, XLA's FLOPs miss the matrix products it
  hands to cuBLAS, so benchmarks/plan_vs_gpu.py reports this beside the measured step)."""
  from transformer import flops as flops_lib
  peak = flops_lib.peak_flops(kind, 'bfloat16')
  hits = sorted((k for k in BANDWIDTH if k.lower() in kind.lower()), key=len, reverse=True)
  if not (peak and hits and flops and bytes_accessed):
    return None
  hbm, ici, source = BANDWIDTH[hits[0]]
  parts = {'compute_seconds': flops / (peak / per_chip),
           'memory_seconds': float(bytes_accessed) / (hbm / per_chip),
           'collective_seconds': sum(c['traffic'] for c in colls.values()) / (ici / per_chip)}
  parts['seconds'] = (max(parts['compute_seconds'], parts['memory_seconds'])
                      + parts['collective_seconds'])
  parts['source'] = source
  return parts


def compare(config, topology: str, chip_memory_bytes: int | None = None,
            presets: Sequence[str] | None = None,
            shapes_only: bool = False) -> list[dict[str, Any]]:
  """The plan under every parallelism preset (pmap aside), ranked: those that fit first,
  then by estimated step time where the backend gives one, then by collective traffic per
  step and memory per device. A preset the mesh cannot hold is kept, with why."""
  from transformer import sharding
  from transformer.errors import UserError
  rows = []
  for preset in presets or [p for p in sharding.PARALLELISM if p != 'pmap']:
    trial = config.copy_and_resolve_references()
    trial.parallelism = preset
    try:
      rows.append(plan(trial, topology, chip_memory_bytes, shapes_only))
    except UserError as e:
      rows.append({'parallelism': preset, 'error': ' '.join(str(e).split())})

  def key(r):
    if 'error' in r:
      return (2, 0, 0, 0)
    moved = sum(c['traffic'] for c in r['collectives'].values())
    return (0 if r.get('fits', True) else 1, r.get('estimated_step_seconds', 0.0), moved,
            r.get('total_bytes', 0))
  return sorted(rows, key=key)


def recommendation(rows: list[dict[str, Any]]) -> str:
  ok = [r for r in rows if 'error' not in r and r.get('fits', True)]
  if not ok:
    return 'none fits: see each one\'s overflow; add gradient accumulation, remat or chips'
  best = ok[0]
  why = (f'the lowest estimated step time ({best["estimated_step_seconds"] * 1e3:.2f} ms)'
         if 'estimated_step_seconds' in best else
         'the least collective traffic per step among those that fit (the same FLOPs are '
         'split either way; no step-time estimate on this backend), then the least memory')
  return f'{best["parallelism"]}: it fits, with {why}'


def format_comparison(rows: list[dict[str, Any]]) -> str:
  lines = ['| parallelism | mesh | fits | memory per device | collective traffic per device '
           '| estimated step (roofline) |', '|---|---|---|---|---|---|']
  for r in rows:
    if 'error' in r:
      lines.append(f'| {r["parallelism"]} | cannot: {r["error"][:160]} | | | | |')
      continue
    moved = sum(c['traffic'] for c in r['collectives'].values())
    fits = 'yes' if r.get('fits', True) else f'no, by {r["overflow_gib"]:.2f} GiB'
    est = (f'{r["estimated_step_seconds"] * 1e3:.2f} ms'
           if 'estimated_step_seconds' in r else '-')
    mesh = ' '.join(f'{k}={v}' for k, v in r['mesh'].items() if v > 1) or 'one device'
    lines.append(f'| {r["parallelism"]} | {mesh} | {fits} | {_gib(r.get("total_bytes", 0))} '
                 f'| {moved / 2**20:.2f} MiB | {est} |')
  lines += ['', f'recommended: {recommendation(rows)}']
  return '\n'.join(lines)


# ----------------------------------------------------------------------------- report

def _gib(b: float) -> str:
  return f'{b / GIB:.3f} GiB' if b >= GIB / 10 else f'{b / 2**20:.2f} MiB'


def _shapes(shapes: dict[str, list[int]]) -> str:
  groups: dict[tuple, list[str]] = {}
  for k, v in shapes.items():
    groups.setdefault(tuple(v), []).append(k)
  return '; '.join(f'{", ".join(ks)} {list(v)}' for v, ks in groups.items())


def format_report(p: dict[str, Any]) -> str:
  lines = [f'{p["topology"]}: {p["devices"]} x {p["device_kind"]}, {p["parallelism"]} '
           f'parallelism, mesh {p["mesh"]}',
           f'batch: {_shapes(p["batch_shapes"])} per step, from {p["batch_source"]}',
           '', 'per device:',
           f'  parameters        {_gib(p["params_bytes"])}',
           f'  optimizer state   {_gib(p["opt_state_bytes"])}',
           f'  batch             {_gib(p["batch_bytes"])}']
  if 'compile_error' in p:
    lines += [f'  XLA\'s compiler refused it: {p["compile_error"]}',
              f'  total             {_gib(p["total_bytes"])} (state and batch, and the '
              'temporaries the compiler asked for)']
  elif 'total_bytes' in p:
    lines += [f'  compiled step: arguments {_gib(p["argument_bytes"])}, outputs '
              f'{_gib(p["output_bytes"])} ({_gib(p["alias_bytes"])} of them donated '
              f'arguments), temporaries {_gib(p["temp_bytes"])}, code {_gib(p["code_bytes"])}',
              f'  total             {_gib(p["total_bytes"])}']
  if p.get('chip_memory_bytes'):
    lines.append(f'  chip memory       {_gib(p["chip_memory_bytes"])} '
                 f'({p["chip_memory_source"]})')
  if 'fits' in p:
    lines.append('  verdict           ' + ('fits' if p['fits'] else
                                          f'DOES NOT FIT by {p["overflow_gib"]:.2f} GiB'))
  if 'compile_error' in p:
    lines += ['', f'FLOPs per step per device: {p["flops_per_device_analytic"]:.4g} analytic '
              '(transformer/flops.py); no compiled program, so no collectives or estimates']
    return '\n'.join(lines)
  if p['flops_per_device_compiled'] and p['flops_per_device_analytic']:
    ratio = p['flops_per_device_compiled'] / p['flops_per_device_analytic']
    lines += ['', f'FLOPs per step per device: {p["flops_per_device_compiled"]:.4g} compiled '
              f'(XLA cost analysis), {p["flops_per_device_analytic"]:.4g} analytic '
              f'(transformer/flops.py); ratio {ratio:.3f}']
  else:
    lines += ['', f'FLOPs per step per device: {p["flops_per_device_analytic"]:.4g} analytic '
              '(transformer/flops.py); this backend\'s compiled cost analysis gives none']
  if p['collectives']:
    lines.append('collectives per step: ' + ', '.join(
        f'{k} x{v["count"]} ({v["bytes"] / 2**20:.2f} MiB of results, '
        f'{v["traffic"] / 2**20:.2f} MiB sent)' for k, v in
        sorted(p['collectives'].items())))
  else:
    lines.append('collectives per step: none')
  r = p.get('roofline')
  if r or 'xla_optimal_seconds' in p:
    lines += ['', 'ESTIMATES, not measurements:']
    if r:
      lines.append(f'  roofline: compute {r["compute_seconds"] * 1e3:.2f} ms (compiled FLOPs at '
                   f'the bf16 peak), memory {r["memory_seconds"] * 1e3:.2f} ms (bytes accessed '
                   f'at HBM bandwidth), collectives {r["collective_seconds"] * 1e3:.2f} ms '
                   f'(ring traffic, no overlap) -> step {r["seconds"] * 1e3:.2f} ms '
                   f'[{r["source"]}]')
    lines.append('  XLA\'s cost model: ' + (f'{p["xla_optimal_seconds"] * 1e3:.2f} ms'
                                             if 'xla_optimal_seconds' in p else
                                             'no estimate for this program'))
    lines.append(f'  from the {"roofline" if r else "cost model"}: '
                 f'{p["estimated_examples_or_tokens_per_second"]:,.0f} tokens (or examples)/s'
                 + (f', MFU {100 * p["estimated_mfu"]:.1f}%' if 'estimated_mfu' in p else '')
                 + f', {p["estimated_seconds_to_num_train_steps"] / 3600:.2f} h to '
                 'num_train_steps')
  else:
    lines.append('(no step-time estimate for this device: the roofline needs its peak FLOP/s and '
                 'bandwidths, known for TPUs, and XLA\'s cost model gives none)')
  return '\n'.join(lines)


# ----------------------------------------------------------------------------- command line

def _flag(argv: Sequence[str], name: str) -> str | None:
  """--NAME=V from argv, read before JAX starts (tools.cli._flag_value's module imports it)."""
  for a in argv:
    if a.startswith(f'--{name}='):
      return a.split('=', 1)[1]
  return None


def main() -> None:
  topology = _flag(sys.argv, 'topology')
  try:
    if topology is None:
      raise PlanError('--topology is required, e.g. --topology=v5e:2x2 or --topology=cpu:8')
    prepare_environment(topology)   # before JAX starts
  except PlanError as e:
    print(f'error: {e}', file=sys.stderr)
    raise SystemExit(2) from None

  from absl import flags

  from tools import cli
  flags.DEFINE_string('topology', None, 'cpu:N or a TPU topology (v5e:2x2, v4:2x2x4, ...)')
  flags.DEFINE_float('chip_memory_gib', 0.0, 'Override the chip memory (GiB).')
  flags.DEFINE_bool('require_fit', False, 'Exit with status 2 when it does not fit.')
  flags.DEFINE_string('json', '', 'Also write the plan as JSON to this file.')
  flags.DEFINE_bool('compare', False, 'Plan every parallelism preset and rank them.')
  flags.DEFINE_list('presets', [], 'With --compare: only these presets (default: all).')
  flags.DEFINE_bool('shapes_only', False, 'Plan from the batch shapes the config implies, '
                    'without reading the data (the default where it is not readable here).')
  cli.define_config_flag(sys.argv)
  FLAGS = flags.FLAGS

  def run(argv):
    from transformer.errors import ConfigError
    memory = int(FLAGS.chip_memory_gib * GIB) if FLAGS.chip_memory_gib else None
    try:
      if FLAGS.compare:
        rows = compare(FLAGS.config, FLAGS.topology, memory, FLAGS.presets or None,
                       shapes_only=FLAGS.shapes_only)
        print(format_comparison(rows))
        if FLAGS.json:
          with open(FLAGS.json, 'w') as f:
            json.dump(rows, f, indent=2)
        return
      p = plan(FLAGS.config, FLAGS.topology, memory, FLAGS.shapes_only)
    except PlanError as e:
      raise ConfigError(str(e)) from None
    print(format_report(p))
    if FLAGS.json:
      with open(FLAGS.json, 'w') as f:
        json.dump(p, f, indent=2)
    if FLAGS.require_fit and p.get('fits') is False:
      raise ConfigError(f'does not fit: {p["overflow_gib"]:.2f} GiB over the chip\'s memory '
                        '(--require_fit)')
  cli.run(run)


if __name__ == '__main__':
  main()
