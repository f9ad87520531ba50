"""Use a trained model: translate a file or stdin, continue prompts, classify images, score.

  # translation (config.decoding: beam 4 by default; --config.decoding.method=greedy)
  python generate.py --workdir=runs/multi30k --input=sources.de --output=hyps.en
  echo "Ein Hund rennt." | python generate.py --workdir=runs/multi30k
  # language model: one prompt per line, config.sample's temperature / top_k / top_p;
  # each prompt + continuation is written as a block under '=== prompt N ==='
  python generate.py --workdir=runs/shakespeare --input=prompts.txt --num_tokens=200
  # a converted GPT-2 or Llama-family model (tools.convert import) with its own tokenizer.json
  echo "The capital of France is" | python generate.py --workdir=runs/qwen2 --num_tokens=20
  # a converted T5 translates (config.source_prefix: its task prefix, from its config.json)
  echo "The house is wonderful." | python generate.py --workdir=runs/t5-small
  # classification: every image file in a folder -> 'path<TAB>class<TAB>probability'
  python generate.py --workdir=runs/vit_mnist --images=digits/
  # sentence classification (a fine-tuned BERT): one sentence per line ->
  # 'class<TAB>probability<TAB>sentence'
  echo "a gorgeous, witty film" | python generate.py --workdir=runs/sst2_bert
  # score an existing hypothesis file (no model): sacreBLEU and tokenized BLEU
  python generate.py --score --input=hyps.en --references=refs.en

The model and its config come from the workdir alone (WORKDIR/config.json;
--config=FILE and --config.FIELD=VALUE override it); the newest good checkpoint
is used (--step=N, or --checkpoint=avg). --input and --output default to
stdin and stdout ('-'); lines are read and written in order (translation
decodes them sorted by length, in batches of config.decoding.batch_size).
Progress (sentences/s, ETA) goes to stderr. User errors print one message and
exit with status 2.
"""

import sys

from absl import app, flags

from tools import cli

flags.DEFINE_string('workdir', None, 'Directory the model was trained in.')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
flags.DEFINE_enum('checkpoint', 'latest', ['latest', 'avg', 'best'],
                  "'avg': the averaged checkpoint from `python -m tools.average`; 'best': the "
                  'best by config.best_metric (WORKDIR/checkpoints_best).')
flags.DEFINE_string('input', '-', "Text lines to translate / prompts; '-': stdin.")
flags.DEFINE_string('output', '-', "Where the outputs go, one per line; '-': stdout.")
flags.DEFINE_string('images', None, 'Classification: a folder of image files.')
flags.DEFINE_integer('num_tokens', 100, 'Language models: new tokens per prompt.')
flags.DEFINE_bool('score', False, 'Score --input (hypotheses) against --references; no model.')
flags.DEFINE_string('references', None, '--score: the reference file, one sentence per line.')
cli.define_config_flag(sys.argv, from_workdir=True)
FLAGS = flags.FLAGS


def _read_lines(path: str) -> list[str]:
  from transformer.data import DataError
  if path == '-':
    return [line.rstrip('\n') for line in sys.stdin]
  try:
    with open(path, encoding='utf-8') as f:
      return [line.rstrip('\n') for line in f]
  except FileNotFoundError:
    raise DataError(f'{path} does not exist') from None
  except UnicodeDecodeError as e:
    raise DataError(f'{path} is not valid UTF-8 ({e})') from None


def _write_lines(path: str, lines: list[str]) -> None:
  _write_text(path, ''.join(line.replace('\n', ' ') + '\n' for line in lines))


def _write_text(path: str, text: str) -> None:
  if path == '-':
    sys.stdout.write(text)
    sys.stdout.flush()
  else:
    with open(path, 'w', encoding='utf-8') as f:
      f.write(text)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from transformer import inference, logs
  logs.setup_logging(sys.stderr)   # stdout carries the outputs
  if FLAGS.score:
    if not FLAGS.references:
      raise app.UsageError('--score needs --references=FILE (and --input=HYPOTHESES)')
    result = inference.score(_read_lines(FLAGS.input), _read_lines(FLAGS.references))
    print(logs.format_metrics(result))
    return
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required: the directory the model was trained in.')
  if FLAGS.num_tokens <= 0:
    raise app.UsageError(f'--num_tokens={FLAGS.num_tokens} must be a positive integer')
  if FLAGS.config is None:
    raise app.UsageError(f'{FLAGS.workdir}/config.json does not exist: pass '
                         '--config=configs/NAME.py, or point --workdir at a trained run.')
  from transformer import host
  host.tune_allocator()
  host.use_compilation_cache()
  from transformer import convert, tasks
  config = FLAGS.config
  if convert.is_converted(config, FLAGS.workdir):   # `tools.convert import`: its own tokenizer
    if FLAGS.images:
      raise app.UsageError('--images needs a trained classification model')
    if config.pretrained.model == 'EncoderDecoder':   # T5: translate, with its task prefix
      _write_lines(FLAGS.output, inference.translate_pretrained(config, FLAGS.workdir,
                                                                _read_lines(FLAGS.input)))
      return
    _write_blocks(inference.continue_pretrained(config, FLAGS.workdir, _read_lines(FLAGS.input),
                                                FLAGS.num_tokens))
    return
  makes = tasks.task_class(config).generates   # what this task's model makes from inputs
  if makes is None:
    raise app.UsageError(f'a {config.task!r} model generates nothing: evaluate it with eval.py')
  if makes == 'labels':
    if not FLAGS.images:
      raise app.UsageError('a classification model classifies --images=FOLDER')
    paths = inference.image_files(FLAGS.images)
  elif FLAGS.images:
    raise app.UsageError(f'--images needs a classification model; this one makes {makes}')
  else:
    lines = _read_lines(FLAGS.input)
  exp, state = inference.load_trained(config, FLAGS.workdir, FLAGS.step, FLAGS.checkpoint,
                                      from_workdir=True)   # its tokenizer; no dataset
  params = state.params
  if makes == 'labels':
    rows = inference.classify_images(exp, params, paths,
                                     progress=inference.Progress(len(paths), 'images'))
    _write_lines(FLAGS.output, [f"{r['path']}\t{r['class']}\t{r['probability']:.4f}"
                                for r in rows])
  elif makes == 'translations':
    _write_lines(FLAGS.output, inference.translate(exp, params, lines))
  elif makes == 'sentence labels':
    rows = inference.classify_texts(exp, params, lines,
                                    progress=inference.Progress(len(lines), 'sentences'))
    _write_lines(FLAGS.output, [f"{r['class']}\t{r['probability']:.4f}\t{r['text']}"
                                for r in rows])
  else:
    _write_blocks(inference.continue_prompts(exp, params, lines, FLAGS.num_tokens))


def _write_blocks(texts: list[str]) -> None:
  """Continuations span lines: one '=== prompt N ===' block each."""
  _write_text(FLAGS.output, ''.join(f'=== prompt {i + 1} ===\n{t}\n' for i, t in enumerate(texts)))


if __name__ == '__main__':
  cli.run(main)
