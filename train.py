"""Train a model: python train.py --config=configs/NAME.py --workdir=DIR [--config.FIELD=VALUE ...]

Resumes automatically from the newest good checkpoint in DIR; a change to the
model or data fields of a run being resumed is refused (see
transformer.workdir.check_resume). Appends metrics to DIR/metrics.jsonl and
TensorBoard event files under DIR/tensorboard, the console lines to
DIR/train.log, and how the run was launched to DIR/command.txt. User errors
(an invalid config, a missing dataset, ...) print one message and exit with
status 2.
"""

import signal
import sys

# A preemption can come at any moment, start-up included (imports, data, compilation): from
# here on SIGTERM is recorded, and the run stops cleanly at its first chance.
_SIGNALS: list[int] = []
signal.signal(signal.SIGTERM, lambda signum, frame: _SIGNALS.append(signum))

from absl import app, flags  # noqa: E402

from tools import cli  # noqa: E402

flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and logs.')
flags.DEFINE_bool('print_config', False, 'Print the resolved config, the model config after '
                  'presets, the parameter count and FLOPs per step, then exit.')
flags.DEFINE_bool('dry_run', False, 'Also build the model, compile one step, report compile '
                  'time, memory of params + optimizer state and the time of 3 steps, then exit.')
flags.DEFINE_string('report_trial', None, 'SWEEP_DIR#NUMBER: report the search\'s metric '
                    'at each evaluation to that trial of the sweep\'s Optuna study, and stop '
                    'early when its pruner says so (set by python -m tools.sweep run).')
cli.define_config_flag(sys.argv, default='configs/lm_shakespeare_char.py')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required: the directory for checkpoints and metrics.')
  from transformer import distributed, engine, host, logs
  host.tune_allocator()   # CPU: step temporaries stay in the heap (transformer/host.py)
  host.use_compilation_cache()   # reuse earlier processes' compilations (transformer/host.py)
  logs.setup_logging()
  distributed.initialize()
  if FLAGS.print_config or FLAGS.dry_run:
    cli.print_run_description(FLAGS.config, FLAGS.workdir, dry_run=FLAGS.dry_run)
    return
  on_eval = None
  if FLAGS.report_trial:
    from tools import search
    on_eval = search.Reporter(FLAGS.report_trial, FLAGS.workdir)
  engine.train_and_evaluate(FLAGS.config, FLAGS.workdir, command=cli.command_text(),
                            stop_requested=lambda: bool(_SIGNALS), on_eval=on_eval)


if __name__ == '__main__':
  cli.run(main)
