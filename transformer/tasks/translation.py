"""Translation: the paper's encoder-decoder Transformer on sentence pairs.

The task's own config fields, their defaults and checks, are `TranslationSettings`
(and `Decoding`, the `config.decoding` block) below; `train.py --print_config`
prints their values. Common fields read here: seq_len (the longest training pair,
pieces + EOS per side; longer ones are skipped, eval truncates them), packing
(training rows hold several pairs), batch_size (the row granularity: every batch
has a multiple of batch_size rows, so devices, hosts and grad_accum_steps divide
it), eval_batch_size, vocab_size (the shared SentencePiece vocabulary, 0: 8000),
tfds_data_dir.

The decoder's position limit `model.max_len` defaults to seq_len +
decoding.extra_len, so sources of up to seq_len tokens decode to their full
length + extra_len as in the paper.

Training and the periodic evaluation report token-weighted loss, perplexity
and accuracy over target tokens, and `real_token_fraction` (real source +
target tokens over the padded batch size, both sides). eval.py additionally
decodes config.eval_split (`evaluate_extra`): the translations go to
WORKDIR/translations_<split>_step<N>.txt (one line per source sentence, in the
split's order) and BLEU is computed against the raw references:
  bleu (+ bleu_signature)   sacreBLEU, detokenized, 13a, mixed case
  tokenized_bleu            BLEU on 'intl'-tokenized text, mixed case
  tokenized_bleu_lc         the same, lowercased
(see transformer/bleu.py for the exact definitions).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer import bleu, decoding, distributed, flops, models
from transformer import workdir as workdir_lib
from transformer.data import shapes, tokenizers
from transformer.data import translation as tr_data
from transformer.experiment_config import build_model_config
from transformer.progress import Progress
from transformer.tasks.base import (Settings, Task, one_of, positive_int, register, setting,
                                    token_cross_entropy, vocab_with_pretrained)

log = logging.getLogger('transformer')

DEFAULT_VOCAB = 8000
DECODING_METHODS = ('greedy', 'beam')


def _eos_rule(value):
  if value in decoding.EOS_RULES:
    return None
  return (f"is not one of {decoding.EOS_RULES} ('all': every EOS among the 2K candidates "
          "finishes, as in the paper's tensor2tensor; 'top_k': only EOS ranked in the top K, "
          'as Hugging Face)')


def _at_least_one(value):
  return None if isinstance(value, int) and value >= 1 else 'must be an integer >= 1'


@dataclasses.dataclass(frozen=True)
class Decoding(Settings):
  """config.decoding: how eval.py, the evaluator and generate.py decode."""
  method: str = setting('beam', "'beam' (beam search) or 'greedy'", check=one_of(DECODING_METHODS))
  beam_size: int = setting(4, 'beams per sentence', check=positive_int)
  alpha: float = setting(0.6, 'GNMT length penalty ((5 + len) / 6) ** alpha')
  extra_len: int = setting(50, 'output length limit: source length + extra_len (the paper: 50)',
                           check=_at_least_one)
  max_eval_sentences: int = setting(-1, 'sentences of eval_split decoded by the evaluator '
                                    '(-1: all)')
  batch_size: int = setting(64, 'sentences decoded together', check=positive_int)
  eos_rule: str = setting('all', 'which EOS candidates finish a beam (decoding.beam_search)',
                          check=_eos_rule)


@dataclasses.dataclass(frozen=True)
class TranslationSettings(Settings):
  source_lang: str = setting('en', 'source language (the paper: en -> de)', fixed=True)
  target_lang: str = setting('de', 'target language', fixed=True)
  tokens_per_batch: int = setting(4096, 'tokens per side of a global batch, padding included',
                                  fixed=True, check=positive_int)
  bucket_boundaries: tuple = setting((), 'bucket lengths (empty: '
                                     'data.translation.default_boundaries)', fixed=True)
  spm_model_type: str = setting('bpe', "SentencePiece model: 'bpe' or 'unigram'", fixed=True,
                                check=one_of(('bpe', 'unigram')))
  spm_max_sentences: int = setting(tr_data.SPM_MAX_SENTENCES, 'sentences sampled to train the '
                                   'shared vocabulary', fixed=True, check=positive_int)
  source_prefix: str = setting('', "text put before every source sentence a converted model "
                                "translates (T5's task prefix, e.g. 'translate English to "
                                "German: '; generate.py)")
  decoding: Decoding = setting(Decoding(), 'decoding settings (config.decoding)')


def decode_length(n: int, max_len: int) -> int:
  """Source length a decode batch is padded to: a power of two >= 8 (at most max_len)."""
  length = 8
  while length < n:
    length *= 2
  return min(length, max(max_len, n))


@register
class TranslationTask(Task):
  """Sequence-to-sequence translation with `models.EncoderDecoder`."""
  name = 'translation'
  datasets = tr_data.DATASETS + ('files',)   # and your parallel text by path

  settings_class = TranslationSettings
  generates = 'translations'
  required_layers = ('num_encoder_layers', 'num_decoder_layers')

  @classmethod
  def validate(cls, config):
    problems = super().validate(config)
    if config.get('decode') is not None:
      problems.append('config.decode was renamed config.decoding (the decoding settings: '
                      'method, beam_size, alpha, ...); use --config.decoding.FIELD=VALUE')
    return problems

  @classmethod
  def shape_data(cls, config):
    s = cls.settings_class.read(config)[0]
    return shapes.translation_shapes(config.dataset, max_len=config.seq_len,
                                     vocab_size=config.vocab_size or DEFAULT_VOCAB,
                                     tokens_per_batch=s.tokens_per_batch,
                                     packing=bool(config.get('packing', False)))

  @classmethod
  def kept_data(cls, config, workdir):
    """A source without sentence pairs, with the run's tokenizer kept in WORKDIR: what
    translating raw text needs (encoding a source as the splits were, the special ids)."""
    tokenizer = workdir_lib.kept_tokenizer(workdir)
    if tokenizer is None:
      return None
    s = cls.settings_class.read(config)[0]
    return tr_data.TranslationData(
        config.dataset, {}, tokenizer, max_len=config.seq_len,
        tokens_per_batch=s.tokens_per_batch, source_lang=s.source_lang,
        target_lang=s.target_lang, boundaries=list(s.bucket_boundaries) or None,
        packing=bool(config.get('packing', False)), source_prefix=s.source_prefix)

  def __init__(self, config, workdir, data=None):
    super().__init__(config, workdir)
    s = self.settings
    self.data = data if data is not None else tr_data.make_translation_data(
        config.dataset, config.data_dir, workdir=workdir, source_lang=s.source_lang,
        target_lang=s.target_lang, vocab_size=config.vocab_size or DEFAULT_VOCAB,
        max_len=config.seq_len, tokens_per_batch=s.tokens_per_batch,
        boundaries=list(s.bucket_boundaries) or None,
        tfds_data_dir=config.get('tfds_data_dir') or None,
        spm_max_sentences=s.spm_max_sentences, spm_model_type=s.spm_model_type,
        packing=bool(config.get('packing', False)), processes=distributed.processes(),
        files=config.get('files'),
        tokenizer=tokenizers.from_spec(config.get('tokenizer', '')),
        source_prefix=s.source_prefix)
    overrides = {}
    if not config.model or config.model.get('max_len', None) is None:
      overrides['max_len'] = config.seq_len + s.decoding.extra_len
    self.model_cfg = build_model_config(
        config, vocab_size=vocab_with_pretrained(config, self.data.vocab_size), **overrides)

  def model(self, train: bool) -> nn.Module:
    return models.EncoderDecoder(self.model_cfg.replace(deterministic=not train))

  def init_inputs(self) -> tuple:
    x = jnp.ones((1, 8), jnp.int32)
    return (x, x)

  def loss_sums(self, params, batch, rng, train):
    logits = self.model(train).apply(
        {'params': params}, batch['inputs'], batch['targets_in'],
        src_segments=batch.get('source_segments'), tgt_segments=batch.get('target_segments'),
        src_positions=batch.get('source_positions'),
        tgt_positions=batch.get('target_positions'), rngs={'dropout': rng} if train else None)
    sums = token_cross_entropy(logits, batch['targets'], batch['weights'],
                               self.config.label_smoothing if train else 0.0)
    w = batch['weights']
    real_row = jnp.sum(w, axis=-1, keepdims=True) > 0       # empty filler rows hold a lone EOS
    sums['source_tokens'] = jnp.sum((batch['inputs'] != 0) & real_row).astype(jnp.float32)
    sums['padded_tokens'] = jnp.float32(batch['inputs'].size + w.size)
    return sums

  def forward_flops(self, batch):
    b, s = batch['inputs'].shape
    return flops.encdec_forward_flops(self.model_cfg, b, s, batch['targets'].shape[1])

  def summarize(self, sums):
    out = super().summarize(sums)
    out['perplexity'] = float(np.exp(min(out['nll'], 50.0)))
    if sums.get('padded_tokens'):
      out['real_token_fraction'] = ((float(sums['source_tokens']) + float(sums['weight']))
                                    / float(sums['padded_tokens']))
    return out

  # -- decoding ------------------------------------------------------------------

  def translate_tokens(self, params, src: np.ndarray) -> np.ndarray:
    """Source rows [B, S] (pieces + EOS, padded) -> output ids [B, N] (y1 ... EOS, padding)."""
    d = self.settings.decoding
    return np.asarray(decoding.translate(params, self.model_cfg, jnp.asarray(src, jnp.int32),
                                         method=d.method, beam_size=d.beam_size, alpha=d.alpha,
                                         extra_len=d.extra_len, eos_rule=d.eos_rule,
                                         bos_id=self.data.bos_id, eos_id=self.data.eos_id))

  def detokenize(self, ids) -> str:
    ids = np.asarray(ids).tolist()
    if self.data.eos_id in ids:
      ids = ids[:ids.index(self.data.eos_id)]
    return self.data.tokenizer.decode(ids).replace('\n', ' ').strip()

  def translate_split(self, params, split: str, num: int | None = None) -> list[str]:
    """Detokenized translations of the first `num` sources of `split` (all: None), in order."""
    pairs = self.data.tokenized(split)
    num = len(pairs) if num is None else min(num, len(pairs))
    return self.translate_sources(params, [pairs.source(i) for i in range(num)],
                                  label=f'{split}: ')

  def translate_texts(self, params, texts: list[str]) -> list[str]:
    """Detokenized translations of raw source sentences, in order."""
    return self.translate_sources(params, [self.data.encode_source(t) for t in texts])

  def translate_sources(self, params, sources: list[list[int]], label: str = '') -> list[str]:
    """Detokenized translations of tokenized sources (pieces without EOS), in order.

    Sources are decoded sorted by length, decoding.batch_size at a time, each
    batch padded to a power-of-two length (few shapes to compile); sources
    longer than seq_len are truncated to seq_len - 1 pieces + EOS. Progress
    (sentences done, sentences/s, ETA) is logged about every 10 seconds. With
    several processes, each decodes every process_count-th batch on its own
    devices (with a full copy of the parameters), and the outputs are
    gathered, so every process returns all the translations.
    """
    num = len(sources)
    if num == 0:
      return []
    max_len = self.config.seq_len
    sources = [list(s)[:max_len - 1] for s in sources]
    order = np.argsort([len(s) for s in sources], kind='stable')
    rows = min(self.settings.decoding.batch_size, num)
    params = distributed.full_copy(params)   # however the parameters are sharded
    # Output ids and their count for every sentence; -1 where another process decodes it.
    tokens_out = np.full((num, self.model_cfg.max_len), -1, np.int32)
    lengths = np.full((num,), -1, np.int32)
    starts = list(range(0, num, rows))
    mine = distributed.my_share(starts)
    progress = Progress(sum(len(order[s:s + rows]) for s in mine), 'sentences', label)
    done = 0
    for start in mine:
      idx = order[start:start + rows]
      length = decode_length(max(len(sources[i]) for i in idx) + 1, max_len)
      src = np.zeros((rows, length), np.int32)
      src[:, 0] = self.data.eos_id                         # filler rows: a lone EOS
      for r, i in enumerate(idx):
        src[r, :len(sources[i])] = sources[i]
        src[r, len(sources[i])] = self.data.eos_id
      tokens = self.translate_tokens(params, src)
      tokens_out[idx, :tokens.shape[1]] = tokens[:len(idx)]
      lengths[idx] = tokens.shape[1]
      done += len(idx)
      progress(done)
    if jax.process_count() > 1:
      log.info('process %d of %d decoded %d of %d batches', jax.process_index(),
               jax.process_count(), len(mine), len(starts))
    tokens_out, lengths = distributed.combine(tokens_out), distributed.combine(lengths)
    return [self.detokenize(tokens_out[i, :lengths[i]]) for i in range(num)]

  def evaluate_extra(self, params, writer, step, sums=None):
    d = self.settings.decoding
    split = self.config.eval_split
    sources, references = self.data.texts(split)
    num = len(sources) if d.max_eval_sentences < 0 else min(d.max_eval_sentences, len(sources))
    t0 = time.perf_counter()
    hyps = self.translate_split(params, split, num)
    seconds = time.perf_counter() - t0
    refs = references[:num]
    path = None
    if self.workdir and jax.process_index() == 0:
      path = os.path.join(self.workdir, f'translations_{split}_step{step}.txt')
      with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(h + '\n' for h in hyps))
    detok = bleu.corpus_bleu(hyps, refs)
    tok = bleu.tokenized_bleu(hyps, refs)
    tok_lc = bleu.tokenized_bleu(hyps, refs, lowercase=True)
    method = (f'beam search (beam {d.beam_size}, alpha {d.alpha}, eos_rule {d.eos_rule})'
              if d.method == 'beam' else 'greedy')
    examples = [f'source:    {sources[i]}\nreference: {refs[i]}\noutput:    {hyps[i]}'
                for i in range(min(3, num))]
    for e in examples:
      writer.write_text(step, f'translations_{split}', e)
    log.info('%s: decoded %d sentences (%s, max length +%d) in %.1f s; BLEU %.2f (%s), '
             'tokenized BLEU %.2f', split, num, method, d.extra_len, seconds, detok.score,
             detok.signature, tok.score)
    return {'bleu': detok.score, 'bleu_signature': detok.signature,
            'tokenized_bleu': tok.score, 'tokenized_bleu_signature': tok.signature,
            'tokenized_bleu_lc': tok_lc.score, 'bleu_sentences': num, 'decoding': method,
            'decode_seconds': seconds, 'translations_file': path or '', 'examples': examples}
