"""tools.plan against the real thing, on 8 forced CPU devices (tests/tools/test_plan.py runs it):

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/plan_checks.py OUT.json

For the data, fsdp and tensor presets of a tiny Shakespeare LM: the plan (abstract state and
batch, compiled ahead of time), and a real Experiment's state made on the same devices and
its train step compiled on a real batch: bytes per device of parameters and optimizer state,
the collectives of each compiled step, and the plan's FLOPs. Only measures; the assertions
are in the test module.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from tests import helpers  # noqa: E402
from tools import plan as plan_lib  # noqa: E402
from transformer import engine, sharding  # noqa: E402
from configs import lm_shakespeare_char  # noqa: E402

MODEL = dict(d_model=32, num_heads=8, d_ff=64, num_decoder_layers=2, dtype='float32',
             dropout_rate=0.0)
TINY = dict(seq_len=16, batch_size=16, eval_batch_size=8, eval_max_batches=1)


def main(out_path: str) -> None:
  out = {}
  for preset in ('data', 'fsdp', 'tensor'):
    config = helpers.tiny_config(lm_shakespeare_char, model=MODEL, parallelism=preset, **TINY)
    p = plan_lib.plan(config, 'cpu:8')
    exp = engine.Experiment(config, None)
    state = exp.init_state()
    first = jax.devices()[0]
    real = {'params_bytes': max(sharding.addressable_bytes(state.params, d)
                                for d in jax.devices()),
            'opt_state_bytes': max(sharding.addressable_bytes(state.opt_state, d)
                                   for d in jax.devices()),
            'params_bytes_first': sharding.addressable_bytes(state.params, first)}
    batch = exp.put_batch(exp.task.data.train_batch(0, config.batch_size, config.seed,
                                                    exp.data_shard))
    with exp.context():
      compiled = exp.train_step.lower(state, batch).compile()
    real['collectives'] = plan_lib.collectives(compiled.as_text(), len(jax.devices()))
    out[preset] = {'plan': p, 'real': real}
  with open(out_path, 'w') as f:
    json.dump(out, f, indent=2)


if __name__ == '__main__':
  main(sys.argv[1])
