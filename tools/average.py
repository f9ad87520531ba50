"""Average the parameters of the last N checkpoints (the paper averaged the last 5).

python -m tools.average --workdir=DIR [--num=5] [--config=configs/NAME.py]

The config is the run's own (DIR/config.json) unless --config names a file.

Writes WORKDIR/checkpoints_avg/<step>; evaluate it with
`python eval.py --config=... --workdir=DIR --checkpoint=avg`.
"""


import sys

from absl import app, flags

from tools import cli

flags.DEFINE_string('workdir', None, 'Directory the model was trained in.')
flags.DEFINE_integer('num', 5, 'How many of the latest checkpoints to average.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if not FLAGS.workdir or FLAGS.config is None:
    raise app.UsageError('--workdir (a trained run, with its config.json) is required; '
                         '--config too if it has no config.json.')
  from transformer import engine, host, logs
  from transformer import workdir as workdir_lib
  host.tune_allocator()   # CPU: step temporaries stay in the heap (transformer/host.py)
  logs.setup_logging()
  workdir_lib.require_checkpoints(FLAGS.workdir)   # before building anything
  exp = engine.Experiment(FLAGS.config, FLAGS.workdir)
  step, steps = workdir_lib.average_checkpoints(
      FLAGS.workdir, exp.abstract_state, FLAGS.num,
      allow_unverified=FLAGS.config.get('allow_unverified_checkpoints', False))
  logs.log.info('Averaged checkpoints %s into %s/%d', steps,
                workdir_lib.checkpoint_dir(FLAGS.workdir, 'avg'), step)


if __name__ == '__main__':
  cli.define_config_flag(sys.argv, from_workdir=True)
  cli.run(main)
