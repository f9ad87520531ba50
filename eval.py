"""Evaluate a checkpoint: python eval.py --workdir=DIR [--config=configs/NAME.py] [--config.FIELD=VALUE ...]

The config is the run's own (DIR/config.json, with every override train.py was
given) unless --config names a file; --config.FIELD=VALUE overrides either.
Restores the newest good checkpoint in DIR (or --step=N, or --checkpoint=avg
for the averaged one written by `python -m tools.average`), evaluates it on
config.eval_split over the whole split, runs the task's extra evaluation
(language models: samples text from config.sample.prompt; translation:
decodes the split with beam search, writes the translations and BLEU;
classification: writes the confusion matrix as CSV and PNG), appends the results to
DIR/metrics.jsonl and prints them on one line. User errors print one message
and exit with status 2.
"""

import sys

from absl import app, flags

from tools import cli

flags.DEFINE_string('workdir', None, 'Directory the model was trained in.')
flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
flags.DEFINE_enum('checkpoint', 'latest', ['latest', 'avg', 'best'],
                  "'avg': the averaged checkpoint from `python -m tools.average`; 'best': the "
                  'best by config.best_metric (WORKDIR/checkpoints_best).')
cli.define_config_flag(sys.argv, from_workdir=True)
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required: the directory the model was trained in.')
  if FLAGS.config is None:
    raise app.UsageError(f'{FLAGS.workdir}/config.json does not exist: pass '
                         '--config=configs/NAME.py, or point --workdir at a trained run.')
  from transformer import distributed, host, inference, logs
  from transformer.engine import evaluate
  from transformer.metric_writer import MetricWriter
  host.tune_allocator()   # CPU: step temporaries stay in the heap (transformer/host.py)
  host.use_compilation_cache()   # reuse earlier processes' compilations (transformer/host.py)
  logs.setup_logging()
  distributed.initialize()
  config = FLAGS.config
  exp, state = inference.load_trained(config, FLAGS.workdir, FLAGS.step, FLAGS.checkpoint)
  step = int(state.step)
  evaluate.check_eval_split(exp, config.eval_split)   # before any long work: a typo in the
  exp.task.check_evaluators()                          # split, a prompt the model cannot take
  writer = MetricWriter(FLAGS.workdir)
  metrics = exp.evaluate(state.params, config.eval_split, config.eval_max_batches)
  metrics['checkpoint'] = FLAGS.checkpoint
  printable, extra = evaluate.run_evaluators(exp, state.params, writer, step)
  metrics.update(printable)
  writer.write(step, config.eval_split, metrics)
  logs.log.info('eval %s step %d: %s', config.eval_split, step, logs.format_metrics(
      {k: v for k, v in metrics.items() if not k.endswith('signature')}))
  if extra.get('confusion_matrix_csv'):
    from tools import visualize
    metrics_png = visualize.confusion_png(extra['confusion_matrix_csv'])
    logs.log.info('confusion matrix: %s and %s', extra['confusion_matrix_csv'], metrics_png)
  for k, v in extra.items():
    if isinstance(v, list):
      for item in v:
        print(f'--- {k} ---\n{item}')
  writer.close()


if __name__ == '__main__':
  cli.run(main)
