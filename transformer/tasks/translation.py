"""Translation: the paper's encoder-decoder Transformer on sentence pairs.

Config fields read here besides the common ones (configs/base.py):

  source_lang, target_lang  'en' -> 'de' by default (the paper's direction)
  seq_len                   the longest training pair, pieces + EOS per side
                            (longer ones are skipped; eval truncates them)
  tokens_per_batch          per side, padding included, of a global batch
  packing                   training rows hold several pairs (segment ids, positions
                            restarting per pair) instead of length buckets
  batch_size                the row granularity: every batch has a multiple of
                            batch_size rows (so devices, hosts and
                            grad_accum_steps divide it); not the row count
  eval_batch_size           rows per evaluation batch (0: batch_size)
  vocab_size                shared SentencePiece vocabulary (0: 8000)
  spm_model_type            'bpe' (default) or 'unigram'
  spm_max_sentences         sentences sampled to train the vocabulary
  bucket_boundaries         bucket lengths (empty: data.translation.default_boundaries)
  tfds_data_dir             the TFDS data dir for the WMT datasets ('' : default)
  decoding                  ConfigDict(method='beam'|'greedy', beam_size=4,
                            alpha=0.6, extra_len=50, max_eval_sentences=-1,
                            batch_size=64, eos_rule='all'|'top_k'): decoding
                            in eval.py (eos_rule: see decoding.beam_search)

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

import logging
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from transformer import bleu, decoding, distributed, flops, models
from transformer.data import translation as tr_data
from transformer.token_ids import EOS_ID
from transformer.experiment_config import build_model_config, raise_if_problems
from transformer.progress import Progress
from transformer.tasks.base import Task, register, token_cross_entropy

log = logging.getLogger('transformer')

DEFAULT_VOCAB = 8000
DEFAULT_TOKENS_PER_BATCH = 4096
DECODING_DEFAULTS = {'method': 'beam', 'beam_size': 4, 'alpha': 0.6, 'extra_len': 50,
                     'max_eval_sentences': -1, 'batch_size': 64, 'eos_rule': 'all'}
DECODING_METHODS = ('greedy', 'beam')


def decoding_settings(config) -> dict:
  """`config.decoding` over DECODING_DEFAULTS (validated by TranslationTask.validate)."""
  d = dict(DECODING_DEFAULTS)
  if config.get('decoding') is not None:
    d.update(config.decoding.to_dict())
  return d


def _decoding_problems(config) -> list[str]:
  problems = []
  if config.get('decode') is not None:
    problems.append('config.decode was renamed config.decoding (the decoding settings: '
                    'method, beam_size, alpha, ...); use --config.decoding.FIELD=VALUE')
  d = decoding_settings(config)
  unknown = sorted(set(d) - set(DECODING_DEFAULTS))
  if unknown:
    problems.append(f'decoding: unknown field(s) {unknown}; known: {sorted(DECODING_DEFAULTS)}')
  if d['eos_rule'] not in decoding.EOS_RULES:
    problems.append(f"decoding.eos_rule={d['eos_rule']!r} is not one of {decoding.EOS_RULES} "
                    "('all': every EOS among the 2K candidates finishes, as in the paper's "
                    "tensor2tensor; 'top_k': only EOS ranked in the top K, as Hugging Face)")
  if d['method'] not in DECODING_METHODS:
    problems.append(f"decoding.method={d['method']!r} is not one of {DECODING_METHODS}")
  for name in ('beam_size', 'batch_size'):
    if not isinstance(d[name], int) or d[name] <= 0:
      problems.append(f'decoding.{name}={d[name]!r} must be a positive integer')
  if not isinstance(d['extra_len'], int) or d['extra_len'] < 1:
    problems.append(f"decoding.extra_len={d['extra_len']!r} must be an integer >= 1")
  tpb = config.get('tokens_per_batch', DEFAULT_TOKENS_PER_BATCH)
  if not isinstance(tpb, int) or tpb <= 0:
    problems.append(f'tokens_per_batch={tpb!r} must be a positive integer')
  return problems


def _decode_length(n: int, max_len: int) -> int:
  """Source length a decode batch is padded to: a power of two >= 8 (at most max_len)."""
  length = 8
  while length < n:
    length *= 2
  return min(length, max(max_len, n))


@register
class TranslationTask(Task):
  """Sequence-to-sequence translation with `models.EncoderDecoder`."""
  name = 'translation'
  datasets = tr_data.DATASETS
  resume_fixed = ('source_lang', 'target_lang', 'tokens_per_batch', 'spm_model_type',
                  'spm_max_sentences', 'bucket_boundaries')

  @classmethod
  def validate(cls, config):
    return super().validate(config) + _decoding_problems(config)

  def __init__(self, config, workdir):
    super().__init__(config, workdir)
    raise_if_problems(_decoding_problems(config))   # also when built without validation
    self.decoding = decoding_settings(config)
    self.data = tr_data.make_translation_data(
        config.dataset, config.data_dir, workdir=workdir,
        source_lang=config.get('source_lang', 'en'), target_lang=config.get('target_lang', 'de'),
        vocab_size=config.vocab_size or DEFAULT_VOCAB, max_len=config.seq_len,
        tokens_per_batch=config.get('tokens_per_batch', DEFAULT_TOKENS_PER_BATCH),
        boundaries=list(config.get('bucket_boundaries', None) or []) or None,
        tfds_data_dir=config.get('tfds_data_dir', None) or None,
        spm_max_sentences=config.get('spm_max_sentences', tr_data.SPM_MAX_SENTENCES),
        spm_model_type=config.get('spm_model_type', 'bpe'),
        packing=bool(config.get('packing', False)), processes=distributed.processes())
    overrides = {}
    if not config.model or config.model.get('max_len', None) is None:
      overrides['max_len'] = config.seq_len + self.decoding['extra_len']
    self.model_cfg = build_model_config(config, vocab_size=self.data.vocab_size, **overrides)

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
    d = self.decoding
    return np.asarray(decoding.translate(params, self.model_cfg, jnp.asarray(src, jnp.int32),
                                         method=d['method'], beam_size=d['beam_size'],
                                         alpha=d['alpha'], extra_len=d['extra_len'],
                                         eos_rule=d['eos_rule']))

  def detokenize(self, ids) -> str:
    ids = np.asarray(ids).tolist()
    if EOS_ID in ids:
      ids = ids[:ids.index(EOS_ID)]
    return self.data.tokenizer.decode(ids).replace('\n', ' ').strip()

  def translate_split(self, params, split: str, num: int | None = None) -> list[str]:
    """Detokenized translations of the first `num` sources of `split` (all: None), in order."""
    pairs = self.data.tokenized(split)
    num = len(pairs) if num is None else min(num, len(pairs))
    return self.translate_sources(params, [pairs.source(i) for i in range(num)],
                                  label=f'{split}: ')

  def translate_texts(self, params, texts: list[str]) -> list[str]:
    """Detokenized translations of raw source sentences, in order."""
    return self.translate_sources(params, [self.data.tokenizer.encode(t) for t in texts])

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
    rows = min(self.decoding['batch_size'], num)
    index, count = jax.process_index(), jax.process_count()
    if count > 1:   # this process's full copy, however the parameters are sharded
      params = multihost_utils.process_allgather(params, tiled=True)
    # Output ids and their count for every sentence; -1 where another process decodes it.
    tokens_out = np.full((num, self.model_cfg.max_len), -1, np.int32)
    lengths = np.full((num,), -1, np.int32)
    starts = list(range(0, num, rows))
    mine = starts[index::count]
    progress = Progress(sum(len(order[s:s + rows]) for s in mine), 'sentences', label)
    done = 0
    for start in mine:
      idx = order[start:start + rows]
      length = _decode_length(max(len(sources[i]) for i in idx) + 1, max_len)
      src = np.zeros((rows, length), np.int32)
      src[:, 0] = EOS_ID                                   # filler rows: a lone EOS
      for r, i in enumerate(idx):
        src[r, :len(sources[i])] = sources[i]
        src[r, len(sources[i])] = EOS_ID
      tokens = self.translate_tokens(params, src)
      tokens_out[idx, :tokens.shape[1]] = tokens[:len(idx)]
      lengths[idx] = tokens.shape[1]
      done += len(idx)
      progress(done)
    if count > 1:
      log.info('process %d of %d decoded %d of %d batches', index, count, len(mine), len(starts))
      tokens_out, lengths = (np.max(multihost_utils.process_allgather(x), axis=0)
                             for x in (tokens_out, lengths))
    return [self.detokenize(tokens_out[i, :lengths[i]]) for i in range(num)]

  def evaluate_extra(self, params, writer, step, sums=None):
    d = self.decoding
    split = self.config.eval_split
    sources, references = self.data.texts(split)
    num = len(sources) if d['max_eval_sentences'] < 0 else min(d['max_eval_sentences'],
                                                               len(sources))
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
    method = (f"beam search (beam {d['beam_size']}, alpha {d['alpha']}, eos_rule {d['eos_rule']})"
              if d['method'] == 'beam' else 'greedy')
    examples = [f'source:    {sources[i]}\nreference: {refs[i]}\noutput:    {hyps[i]}'
                for i in range(min(3, num))]
    for e in examples:
      writer.write_text(step, f'translations_{split}', e)
    log.info('%s: decoded %d sentences (%s, max length +%d) in %.1f s; BLEU %.2f (%s), '
             'tokenized BLEU %.2f', split, num, method, d['extra_len'], seconds, detok.score,
             detok.signature, tok.score)
    return {'bleu': detok.score, 'bleu_signature': detok.signature,
            'tokenized_bleu': tok.score, 'tokenized_bleu_signature': tok.signature,
            'tokenized_bleu_lc': tok_lc.score, 'bleu_sentences': num, 'decoding': method,
            'decode_seconds': seconds, 'translations_file': path or '', 'examples': examples}
