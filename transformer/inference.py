"""Inference from a trained workdir: translate text, continue prompts, classify images, score.

The library side of generate.py (and eval.py's checkpoint loading):

  exp, state = load_trained(config, workdir)     # the newest good checkpoint
  translate(exp, params, ['Ein Hund läuft.'])    # translation tasks
  continue_prompts(exp, params, ['ROMEO:'], 100) # language models
  classify_images(exp, params, ['cat.png'])      # classification tasks
  score(hypotheses, references)                  # sacreBLEU + tokenized BLEU, no model

Every function takes plain Python lists and returns lists in the same order;
decoding settings come from the experiment config (config.decoding for
translation, config.sample for language models), so a command-line override
changes them.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import jax
import numpy as np

from transformer import bleu, convert, decoding, engine, tasks
from transformer import workdir as workdir_lib
from transformer.tasks import translation as translation_task
from transformer.experiment_config import build_model_config
from transformer.progress import Progress
from transformer.data import DataError
from transformer.data.tokenizers import HFTokenizer
from transformer.errors import ConfigError

log = logging.getLogger('transformer')


def load_model(workdir: str, step: int | None = None):
  """(TransformerConfig, params, model class name) of a trained workdir or one converted by
  `tools.convert import` (its config.json names the pretrained model), from the newest good
  checkpoint (or `step`), verified. What export and the attention figures of a converted
  model need: no Experiment, no data."""
  config = workdir_lib.read_config(workdir)
  if config.get('pretrained'):
    cfg = build_model_config(config, vocab_size=config.pretrained.vocab_size)
    kind = config.pretrained.model
  else:
    task = _task(config, workdir, from_workdir=True)
    cfg, kind = task.model_cfg, type(task.model(False)).__name__
  return cfg, workdir_lib.restore_params(
      workdir, step, config.get('allow_unverified_checkpoints', False)), kind


def _task(config, workdir: str, from_workdir: bool) -> tasks.Task:
  """The task of a trained `workdir`; from_workdir: built from what the workdir keeps (its
  tokenizer: Task.kept_data) where the task can, so that no dataset is read."""
  data = tasks.task_class(config).kept_data(config, workdir) if from_workdir else None
  return tasks.make_task(config, workdir, data=data)


def load_trained(config, workdir: str, step: int | None = None, checkpoint: str = 'latest',
                 from_workdir: bool = False) -> tuple[engine.Experiment, engine.TrainState]:
  """The experiment of `config` and its state restored from WORKDIR's checkpoints.

  checkpoint 'latest': WORKDIR/checkpoints (the newest good one, or `step`);
  'avg': the averaged checkpoint of `python -m tools.average`; 'best': the best
  by config.best_metric. The state is plain (no pmap device axis), restored
  onto the experiment's mesh through `workdir.restore` (verified). `from_workdir`: the
  task is built from what the workdir keeps where it can (`Task.kept_data`: a language
  model needs its tokenizer, not its dataset), for generating, not evaluating. Raises
  CheckpointError when there is no checkpoint, before anything is built (no
  silent random initialization).
  """
  if convert.is_converted(config, workdir):
    raise ConfigError(
        f'{workdir} holds a converted {config.pretrained.get("model_type")} checkpoint '
        '(tools.convert import), weights without a training state or this library\'s data '
        f'pipeline: fine-tune it (train.py --config={workdir}/config.json --workdir=RUN '
        '--config.dataset=...), export it, or draw its attention (tools.visualize attention '
        f'--hf={workdir})')
  workdir_lib.require_checkpoints(workdir, checkpoint)
  exp = engine.Experiment(config, workdir, task=_task(config, workdir, from_workdir))
  workdir_lib.check_tokenizer(workdir, exp.task.tokenizer, 'this config')
  state, _, _ = workdir_lib.restore(
      workdir, exp.abstract_state, step, which=checkpoint,
      allow_unverified=config.get('allow_unverified_checkpoints', False))
  return exp, state


def _require(exp, generates: str, what: str) -> None:
  if exp.task.generates != generates:
    makes = f'makes {exp.task.generates}' if exp.task.generates else 'generates nothing'
    raise ConfigError(f'{what} needs a model that makes {generates}; {exp.workdir} holds a '
                      f'{exp.config.task!r} model, which {makes}')


def translate(exp, params, texts: Sequence[str]) -> list[str]:
  """Translations of raw source sentences with config.decoding (beam or greedy)."""
  _require(exp, 'translations', 'translating text')
  return exp.task.translate_texts(params, list(texts))


def continue_prompts(exp, params, prompts: Sequence[str], num_tokens: int,
                     batch_size: int = 64) -> list[str]:
  """Each prompt with its continuation of up to `num_tokens` tokens (config.sample settings).

  Prompts of any lengths share batches of `batch_size`, padded on the left
  (decoding.pad_left); each continues as it would alone (exactly so when
  greedy, temperature 0). config.sample.num_samples is not used: one
  continuation per prompt; batch i is seeded by config.seed and i.
  """
  _require(exp, 'continuations', 'continuing prompts')
  return continue_with(params, exp.task.model_cfg, exp.task.data.tokenizer, prompts,
                       num_tokens, exp.config.sample, exp.config.seed, batch_size)


def continue_with(params, cfg, tok, prompts: Sequence[str], num_tokens: int, sample,
                  seed: int = 0, batch_size: int = 64) -> list[str]:
  """`continue_prompts` for any DecoderLM config, params and tokenizer (`sample`: temperature,
  top_k, top_p). When a prompt leaves the model fewer than `num_tokens` positions, its batch
  gets what fits and a warning says how many."""
  encoded = [tok.encode(p) for p in prompts]
  for i, ids in enumerate(encoded):
    if not ids:
      raise DataError(f'prompt {i + 1} is empty after tokenization: give each prompt some text')
    if len(ids) >= cfg.max_len:
      raise DataError(f'prompt {i + 1} has {len(ids)} tokens; the model has {cfg.max_len} '
                      f'positions: shorten it')
  eos = getattr(tok, 'eos_id', None)
  out = []
  for b, start in enumerate(range(0, len(encoded), batch_size)):
    chunk = encoded[start:start + batch_size]
    tokens, left_pad = decoding.pad_left(chunk, getattr(tok, 'pad_id', None) or 0)
    n = min(num_tokens, cfg.max_len - tokens.shape[1] + 1)
    if n < num_tokens:
      log.warning(f'prompts {start + 1}-{start + len(chunk)} (up to {tokens.shape[1]} tokens) '
                  f'leave room for {n} new tokens of the {num_tokens} asked: the model has '
                  f'{cfg.max_len} positions')
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), b)
    new = decoding.generate(params, cfg, tokens, n, rng=rng, temperature=sample.temperature,
                            top_k=sample.top_k, top_p=sample.top_p, eos_id=eos,
                            left_pad=left_pad)
    out += [tok.decode(ids + np.asarray(row).tolist()) for ids, row in zip(chunk, new)]
  return out


def pretrained_tokenizer(workdir: str) -> HFTokenizer:
  """The tokenizer.json a workdir of `tools.convert import` keeps under hf/ (DataError if none)."""
  try:
    return HFTokenizer.from_dir(os.path.join(workdir, convert.HF_SUBDIR))
  except ValueError as e:
    raise DataError(f'{workdir} holds no usable tokenizer: {e}') from None


def _pretrained_tokenizer_of(config, workdir: str, model: str, what: str) -> HFTokenizer:
  """A converted workdir's tokenizer, checked against its fingerprint and embedding, before
  the checkpoint is read; a ConfigError when the model is not a `model`."""
  pretrained = config.pretrained
  if pretrained.model != model:
    raise ConfigError(f'{workdir} holds a converted {pretrained.model_type} '
                      f'({pretrained.model}), which does not {what}')
  tok = pretrained_tokenizer(workdir)
  workdir_lib.check_tokenizer(workdir, tok, f'{tok.path}')
  if tok.vocab_size > pretrained.vocab_size:
    raise DataError(f'{tok.path} has {tok.vocab_size} tokens but the model\'s embedding has '
                    f'{pretrained.vocab_size}: the tokenizer is not this model\'s')
  return tok


def continue_pretrained(config, workdir: str, prompts: Sequence[str],
                        num_tokens: int) -> list[str]:
  """`continue_prompts` with a converted DecoderLM (GPT-2, Llama, Qwen2, Mistral) and its own
  tokenizer.json: text in, text out (config.sample's settings; stops at the model's EOS)."""
  tok = _pretrained_tokenizer_of(config, workdir, 'DecoderLM', 'continue prompts')
  cfg, params, _ = load_model(workdir)
  return continue_with(params, cfg, tok, prompts, num_tokens, config.sample, config.seed)


def translate_pretrained(config, workdir: str, texts: Sequence[str]) -> list[str]:
  """Translations with a converted encoder-decoder (T5) and its own tokenizer.json: each text
  after `config.source_prefix` (T5's task prefix, e.g. 'translate English to German: '),
  encoded with the tokenizer's policy (T5 appends </s>), decoded as config.decoding says
  (greedy or beam) from the model's decoder start id until its end id."""
  tok = _pretrained_tokenizer_of(config, workdir, 'EncoderDecoder', 'translate')
  # The ids of the model's config.json (HFTokenizer.from_dir reads them; T5's defaults else).
  eos = tok.eos_id if tok.eos_id is not None else 1
  start = tok.decoder_start_id if tok.decoder_start_id is not None else (tok.pad_id or 0)
  pad = tok.pad_id or 0
  settings, problems = tasks.task_class(config).settings_class.read(config)
  if problems:
    raise ConfigError('; '.join(problems))
  s = settings.decoding
  prefix = config.get('source_prefix', '')
  cfg, params, _ = load_model(workdir)
  sources = [tok.encode(prefix + t)[:cfg.max_len] for t in texts]
  out = []
  for begin in range(0, len(sources), s.batch_size):
    chunk = sources[begin:begin + s.batch_size]
    length = translation_task.decode_length(max(len(c) for c in chunk), cfg.max_len)
    src = np.full((len(chunk), length), pad, np.int32)
    for r, ids in enumerate(chunk):
      src[r, :len(ids)] = ids
    tokens = decoding.translate(params, cfg, src, method=s.method, beam_size=s.beam_size,
                                alpha=s.alpha, extra_len=s.extra_len, bos_id=start, eos_id=eos,
                                eos_rule=s.eos_rule)
    for row in np.asarray(tokens).tolist():
      out.append(tok.decode(row[:row.index(eos)] if eos in row else row))
  return out


def load_image(path: str, channels: int) -> np.ndarray:
  """An image file as uint8 HWC with `channels` (1: grayscale, 3: RGB)."""
  try:
    from PIL import Image
  except ImportError as e:
    raise DataError('classifying image files needs pillow: pip install pillow') from e
  try:
    with Image.open(path) as im:
      array = np.asarray(im.convert('L' if channels == 1 else 'RGB'), np.uint8)
  except (OSError, ValueError) as e:
    raise DataError(f'{path}: not a readable image ({e})') from e
  return array[..., None] if array.ndim == 2 else array


IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp')


def image_files(folder: str) -> list[str]:
  """The image files directly in `folder`, sorted by name."""
  if not os.path.isdir(folder):
    raise DataError(f'{folder} is not a directory of images')
  files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                 if f.lower().endswith(IMAGE_SUFFIXES))
  if not files:
    raise DataError(f'{folder} holds no image files ({", ".join(IMAGE_SUFFIXES)})')
  return files


def classify_images(exp, params, paths: Sequence[str], batch_size: int = 64,
                    progress: Progress | None = None) -> list[dict]:
  """{'path', 'label', 'class', 'probability'} of the top class for each image file.

  Images are resized (and center-cropped) as the evaluation split is.
  """
  _require(exp, 'labels', 'classifying images')
  data = exp.task.data
  model = exp.task.model(False)
  apply = jax.jit(lambda p, x: jax.nn.softmax(model.apply({'params': p}, x), axis=-1))
  prepare = lambda chunk: data.prepare([load_image(p, data.num_channels) for p in chunk])
  return _top_classes(apply, params, paths, prepare, 0, data.class_names, 'path', batch_size,
                      progress)


def classify_texts(exp, params, texts: Sequence[str], batch_size: int = 64,
                   progress: Progress | None = None) -> list[dict]:
  """{'text', 'label', 'class', 'probability'} of the top class for each sentence, encoded
  as the training data was (the run's tokenizer, truncated to seq_len)."""
  _require(exp, 'sentence labels', 'classifying sentences')
  data = exp.task.data
  model = exp.task.model(False)
  apply = jax.jit(lambda p, x: jax.nn.softmax(model.apply({'params': p}, x, head='classify'),
                                              axis=-1))
  return _top_classes(apply, params, texts, data.encode, data.pad_id, data.class_names, 'text',
                      batch_size, progress)


def _top_classes(apply, params, items: Sequence, prepare, fill, class_names, key: str,
                 batch_size: int, progress: Progress | None) -> list[dict]:
  """`apply(params, prepare(chunk))` -> class probabilities, batch by batch (a short last
  batch filled with `fill` rows, so one shape compiles): the top class of each item."""
  out = []
  for start in range(0, len(items), batch_size):
    chunk = list(items[start:start + batch_size])
    x = prepare(chunk)
    if len(chunk) < batch_size and len(items) > batch_size:   # one compiled shape
      x = np.concatenate([x, np.full((batch_size - len(chunk),) + x.shape[1:], fill, x.dtype)])
    probs = np.asarray(apply(params, x))[:len(chunk)]
    for item, p in zip(chunk, probs):
      label = int(np.argmax(p))
      out.append({key: item, 'label': label, 'class': class_names[label],
                  'probability': float(p[label])})
    if progress:
      progress(len(out))
  return out


def score(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
  """sacreBLEU and tokenized BLEU (transformer/bleu.py) of hypotheses against references."""
  if len(hypotheses) != len(references):
    raise DataError(f'{len(hypotheses)} hypotheses but {len(references)} references: the '
                    'files must have one sentence per line, in the same order')
  detok = bleu.corpus_bleu(list(hypotheses), list(references))
  tok = bleu.tokenized_bleu(list(hypotheses), list(references))
  tok_lc = bleu.tokenized_bleu(list(hypotheses), list(references), lowercase=True)
  return {'sentences': len(hypotheses), 'bleu': detok.score, 'bleu_signature': detok.signature,
          'tokenized_bleu': tok.score, 'tokenized_bleu_lc': tok_lc.score,
          'tokenized_bleu_signature': tok.signature}
