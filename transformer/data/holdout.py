"""Whole-sentence hold-outs of tables whose rows are phrases of other rows (SST).

SST's training rows are every phrase of every parsed sentence, so holding out
random rows leaves the rest of their sentences in train. These helpers find the
whole sentences (rows that are no other row's contiguous word span) and the rows
that fall inside held-out ones, so nothing of a held-out sentence is trained on
(text_classification's `validation_holdout_whole`) or pretrained on
(`files.skip_holdout` of the text families). Texts are compared with their
whitespace collapsed.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np

from transformer.data import DataError

# Word spans whole_sentence_rows may enumerate (SST-2's train: at most 5.5M, 0.9 s): past
# this, rows are documents, not phrase trees, and a plain random hold-out is what fits.
MAX_SPANS = 100_000_000


def _norm(text: str) -> str:
  return ' '.join(text.split())


def _spans(words: list[str]) -> Iterator[str]:
  for i in range(len(words)):
    for j in range(i + 1, len(words) + 1):
      yield ' '.join(words[i:j])


def whole_sentence_rows(sentences: Sequence[str]) -> list[int]:
  """The rows whose text is no other row's contiguous word span, one row per distinct
  text, in row order. Time: the spans of the whole rows (words squared each); memory: the
  distinct texts."""
  return _whole_rows([_norm(s) for s in sentences])


def _whole_rows(texts: list[str]) -> list[int]:
  distinct, within, seen, whole = set(texts), set(), set(), []
  lengths = [len(t.split()) for t in distinct]
  spans = sum(n * (n + 1) // 2 for n in lengths)
  if spans > MAX_SPANS:
    raise DataError(f'a whole-sentence hold-out of these {len(texts)} rows (up to '
                    f'{max(lengths)} words) would compare up to {spans:,} word spans: it is '
                    "meant for tables of phrases like SST's; set validation_holdout_whole=False "
                    '(and files.skip_holdout=0) for rows of whole documents')
  for i in sorted(range(len(texts)), key=lambda i: (-len(texts[i].split()), i)):
    if texts[i] in within or texts[i] in seen:   # longest first: containers come first
      continue
    seen.add(texts[i])
    whole.append(i)
    within.update(span for span in _spans(texts[i].split())
                  if span in distinct and span != texts[i])
  return sorted(whole)


def draw(pool: Sequence[int], num: int, setting: str, rows: str
         ) -> tuple[np.ndarray, np.ndarray]:
  """(kept, held): `num` of the row indices `pool` held out by a permutation with seed 0
  (the same for every run and every task reading the same rows), both sorted. DataError
  naming `setting` and what the pool holds (`rows`) when `num` is not in 1 .. len - 1."""
  if not 0 < num < len(pool):
    raise DataError(f'{setting}={num} must be between 1 and the {len(pool)} {rows} - 1')
  order = np.asarray(pool, np.int64)[np.random.default_rng(0).permutation(len(pool))]
  return np.sort(order[:-num]), np.sort(order[-num:])


def hold_out_whole(sentences: Sequence[str], num: int, setting: str, where: str
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(kept, held) row indices: `num` whole sentences drawn as `draw` does, and the rows
  that are no word span of one. `setting` and `where` (e.g. 'in train') name them in the
  DataError of a `num` out of range."""
  texts = [_norm(s) for s in sentences]
  held = draw(_whole_rows(texts), num, setting, f'whole sentences {where}')[1]
  return np.asarray(_outside(texts, held), np.int64), held


def _outside(texts: list[str], held: Iterable[int]) -> list[int]:
  """The rows that are no word span of a held-out row (the held-out rows included)."""
  distinct, covered = set(texts), set()
  for i in held:
    covered.update(span for span in _spans(texts[i].split()) if span in distinct)
  return [i for i, t in enumerate(texts) if t not in covered]
