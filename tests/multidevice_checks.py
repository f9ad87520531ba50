"""Every multi-device check in one 8-device process, for tests/integration/test_multidevice.py.

  XLA_FLAGS='--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0' \
      python tests/multidevice_checks.py OUT_DIR

XLA_FLAGS must be set before JAX is imported, hence a subprocess; one process pays JAX's
start-up and the shared compilations once. Writes OUT_DIR/sharding.json (+ .params.npz:
tests/sharding_checks.py, every parallelism preset and restoring across meshes) and
OUT_DIR/scale.json (tests/scale_checks.py: gradient accumulation, pmap, collectives, MFU).
Only measures; the assertions are in the test module.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scale_checks  # noqa: E402
import sharding_checks  # noqa: E402


def main(out_dir: str) -> None:
  sharding_checks.main(os.path.join(out_dir, 'sharding.json'))
  workdir = os.path.join(out_dir, 'scale_work')
  os.makedirs(workdir, exist_ok=True)
  scale_checks.main(os.path.join(out_dir, 'scale.json'), workdir)


if __name__ == '__main__':
  main(sys.argv[1])
