"""Train a model: python train.py --config=configs/NAME.py --workdir=DIR [--config.FIELD=VALUE ...]

Resumes automatically from the latest checkpoint in DIR. Appends metrics to
DIR/metrics.jsonl and TensorBoard event files under DIR/tensorboard.
"""


from absl import app, flags
from ml_collections import config_flags

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs.')
config_flags.DEFINE_config_file('config', 'configs/lm_shakespeare_char.py',
                                'Experiment config file.', lock_config=True)
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required: the directory for checkpoints and metrics.')
  from transformer import distributed, host, train_lib
  host.tune_allocator()   # CPU: step temporaries stay in the heap (transformer/host.py)
  train_lib.setup_logging()
  distributed.initialize()
  train_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
