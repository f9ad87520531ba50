"""Corpus BLEU (sacrebleu), two ways, one reference per sentence.

- `corpus_bleu(hyps, refs)`: sacreBLEU on detokenized text, sacrebleu's defaults
  (mixed case, its '13a' tokenizer, exponential smoothing); report it with its
  signature string, e.g. 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'.
  This is the number comparable across papers that use sacreBLEU.

- `tokenized_bleu(hyps, refs)`: BLEU on *tokens*, as the paper's (and most
  tutorials') "tokenized BLEU": hypotheses and references are first split into
  Moses-like tokens with sacrebleu's 'intl' tokenizer (mteval-v14 international:
  every punctuation mark, apostrophes and hyphens included, becomes its own
  token unless it sits between digits; symbols are split off), case preserved,
  then scored with tokenize='none' (force=True, since the input is tokenized).
  Splitting hyphens plays the part of tensor2tensor's get_ende_bleu.sh compound
  splitting ('##AT##-##AT##') for German, and splitting apostrophes that of the
  spaCy/Moses tokenization used by Multi30k tutorials. The result equals
  sacrebleu with tokenize='intl' on the detokenized text.
  `lowercase=True` gives the lowercased variant many Multi30k tutorials report
  (torchtext's bleu_score on lowercased spaCy tokens); it is reported next to it
  as 'tokenized_bleu_lc'.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from sacrebleu.metrics import BLEU

TOKENIZED_BLEU_TOKENIZER = 'intl'


@dataclasses.dataclass(frozen=True)
class BleuScore:
  score: float          # 0..100
  signature: str        # sacrebleu's signature of the exact metric settings
  precisions: tuple     # 1- to 4-gram precisions (%)
  brevity_penalty: float


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
  if len(hyps) != len(refs):
    raise ValueError(f'{len(hyps)} hypotheses but {len(refs)} references')
  if not hyps:
    raise ValueError('BLEU of an empty corpus')


def _score(metric: BLEU, hyps: Sequence[str], refs: Sequence[str], extra: str = '') -> BleuScore:
  result = metric.corpus_score(list(hyps), [list(refs)])
  return BleuScore(float(result.score), str(metric.get_signature()) + extra,
                   tuple(float(p) for p in result.precisions), float(result.bp))


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str]) -> BleuScore:
  """sacreBLEU on detokenized text (defaults: 13a, mixed case)."""
  _check(hyps, refs)
  return _score(BLEU(), hyps, refs)


@functools.lru_cache(maxsize=1)
def _intl():
  from sacrebleu.tokenizers.tokenizer_intl import TokenizerV14International
  return TokenizerV14International()


def tokenize(text: str, lowercase: bool = False) -> str:
  """The tokens `tokenized_bleu` scores, space-separated."""
  out = _intl()(text.strip())
  return out.lower() if lowercase else out


def tokenized_bleu(hyps: Sequence[str], refs: Sequence[str], lowercase: bool = False) -> BleuScore:
  """BLEU on 'intl'-tokenized text (see the module doc); case preserved unless `lowercase`."""
  _check(hyps, refs)
  metric = BLEU(tokenize='none', lowercase=lowercase, force=True)
  return _score(metric, [tokenize(x) for x in hyps], [tokenize(x) for x in refs],
                f'|pretok:{TOKENIZED_BLEU_TOKENIZER}')
