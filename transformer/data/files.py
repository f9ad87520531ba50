"""Your own data, by path: `config.dataset='files'` and the `config.files` block.

    --config.dataset=files --config.files.train='corpus/*.txt' --config.files.validation=dev.txt

`config.files.{train,validation,test}` each name a split's files: a path, a glob, or
several of them separated by commas (a split left '' does not exist); `{data_dir}`
in a path stands for the data directory (config.data_dir, else
$TRANSFORMER_DATA_DIR), so a config file can name the shared datasets. What the
files hold depends on the family:

- text (lm, mlm): UTF-8 text (.gz too); `files.unit='line'` makes each non-empty
  line a document, 'file' each whole file. A table among them (.tsv, .csv,
  .jsonl, as below) gives the values of its `files.text_column` as documents.
  The documents are encoded one by one with the run's tokenizer (`config.tokenizer`, e.g. a pretrained model's
  'hf:DIR'; else characters of the training text) and concatenated into one
  stream per split: a pretrained tokenizer's own policy adds its start/end
  tokens, and its end id (where it has one) closes each document.
  `files.skip_holdout=N` leaves out of the training tables the N whole sentences
  (and the rows inside them) that text_classification's `validation_holdout=N`
  with `validation_holdout_whole` validates on (data/holdout.py).
- tables (text_classification): .tsv, .csv or .jsonl (.gz too) with a header row
  (TSV/CSV) or one object per line (JSONL); `files.text_column` and
  `files.label_column` name the fields. Labels are integers 0..C-1, or names
  (mapped to ids in sorted order, `label_names`).
- translation: `files.SPLIT` is a prefix P of aligned files P.SRC and P.TGT (or
  .gz), one sentence per line, with the languages of the task's `source_lang`
  and `target_lang` (e.g. files.train=data/train reads data/train.en and
  data/train.de).
- images (classification): a folder per class holding image files (the ImageNet
  layout: TRAIN/CLASS/*.jpeg); the class names, sorted, are the labels.

Every file is checked before the first step: a split that matches no file, an
unreadable or empty file, a table without the named columns, an unknown label
value, unaligned translation files: one DataError naming the file.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os

import numpy as np

from transformer.data import DataError, holdout, read_text

DATASET = 'files'
SPLITS = ('train', 'validation', 'test')
UNITS = ('line', 'file')


def split_specs(files, data_dir: str | None = None) -> dict[str, str]:
  """{split: spec} of the splits `files` names (non-empty), train first, with `{data_dir}`
  filled in; DataError when there is no train split."""
  specs = {s: str(files.get(s) or '').strip() for s in SPLITS}
  specs = {s: v for s, v in specs.items() if v}
  if 'train' not in specs:
    raise DataError("dataset='files' needs config.files.train: the training files (a path, a "
                    "glob, or several separated by commas)")
  for split, spec in specs.items():
    if '{data_dir}' in spec:
      if not data_dir:
        raise DataError(f'files.{split}={spec!r} names {{data_dir}}, but no data directory is '
                        'set: set --config.data_dir or $TRANSFORMER_DATA_DIR')
      specs[split] = spec.replace('{data_dir}', data_dir.rstrip('/'))
  return specs


def _parts(spec: str) -> list[str]:
  """The comma-separated paths of a split's spec, with ~ and $VARIABLES expanded."""
  return [os.path.expanduser(os.path.expandvars(p.strip())) for p in spec.split(',')
          if p.strip()]


def _without_gz(path: str) -> str:
  return path[:-3] if path.endswith('.gz') else path


def expand(spec: str, split: str) -> list[str]:
  """The files a split's spec names (globs expanded, sorted per pattern), each existing."""
  out = []
  for part in _parts(spec):
    matches = sorted(glob.glob(part)) if glob.has_magic(part) else [part]
    matches = [m for m in matches if os.path.isfile(m)]
    if not matches:
      raise DataError(f'files.{split}={spec!r}: {part!r} matches no file; give existing files '
                      '(paths or globs, separated by commas)')
    out += matches
  return out


def is_table(path: str) -> bool:
  return _without_gz(path).endswith(('.tsv', '.csv', '.jsonl'))


def documents(spec: str, split: str, unit: str = 'line', text_column: str = 'sentence',
              skip_holdout: int = 0) -> list[str]:
  """A text split's documents: the non-empty lines ('line') or whole files ('file'); a
  table's `text_column` values. `skip_holdout` = N > 0 leaves out of the tables' rows
  (all of the split's tables, in order, as text_classification reads them) the N whole
  sentences that `validation_holdout=N` with `validation_holdout_whole` holds out, and
  every row inside one: text pretrained on is then never the text validated on."""
  if unit not in UNITS:
    raise DataError(f'files.unit={unit!r} is not one of {UNITS}')
  paths = expand(spec, split)
  tables = {p: column(p, text_column) for p in paths if is_table(p)}
  kept = None   # every row of the tables
  if skip_holdout:
    rows = [t for p in tables for t in tables[p]]
    kept = set(holdout.hold_out_whole(rows, skip_holdout, 'files.skip_holdout',
                                      f'of the tables in files.{split}')[0].tolist())
  docs, row = [], 0
  for path in paths:
    if path in tables:
      docs += [t for i, t in enumerate(tables[path], row)
               if t.strip() and (kept is None or i in kept)]
      row += len(tables[path])
      continue
    text = read_text(path)
    docs += [line for line in text.split('\n') if line.strip()] if unit == 'line' else [text]
  return docs


def encode_documents(tokenizer, docs: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
  """One stream of the documents, each encoded alone (its tokenizer's start/end policy), closed
  by the end id where the tokenizer has one and the encoding does not end with it; and the
  characters each token covers (`encode_with_chars`; the added end id covers none), or None
  when the tokenizer cannot say."""
  eos = getattr(tokenizer, 'eos_id', None)
  counted = hasattr(tokenizer, 'encode_with_chars')
  ids_out, chars_out = [], []
  for doc in docs:
    ids, chars = tokenizer.encode_with_chars(doc) if counted else (tokenizer.encode(doc), [])
    ids, chars = list(ids), list(chars)
    if eos is not None and (not ids or ids[-1] != eos):
      ids.append(eos)
      chars.append(0)
    ids_out.append(np.asarray(ids, np.int32))
    chars_out.append(np.asarray(chars, np.int32))
  if not ids_out:
    return np.zeros(0, np.int32), None
  return np.concatenate(ids_out), np.concatenate(chars_out) if counted else None


def _rows(path: str) -> tuple[list[str], list[dict]]:
  """(header, rows as dicts) of a .tsv/.csv/.jsonl file (optionally .gz)."""
  base = _without_gz(path)
  text = read_text(path)
  if base.endswith('.jsonl'):
    rows = []
    for n, line in enumerate(text.split('\n'), start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except ValueError as e:
        raise DataError(f'{path} line {n} is not JSON ({e})') from None
      if not isinstance(row, dict):
        raise DataError(f'{path} line {n}: expected one JSON object per line, got {row!r:.60}')
      row['_line'] = n
      rows.append(row)
    return sorted({k for r in rows for k in r} - {'_line'}), rows
  if base.endswith('.tsv'):
    reader = csv.reader(io.StringIO(text), delimiter='\t', quoting=csv.QUOTE_NONE)
  elif base.endswith('.csv'):
    reader = csv.reader(io.StringIO(text))
  else:
    raise DataError(f'{path}: a table must end in .tsv, .csv or .jsonl (optionally .gz)')
  table = list(reader)
  header, out = table[0], []
  for n, values in enumerate(table[1:], start=2):
    if values:
      row = dict(zip(header, values))
      row['_line'] = n
      out.append(row)
  return header, out


def _columns(path: str, names: tuple[str, ...]) -> list[tuple[str, ...]]:
  """The values of columns `names` in each row of a table; DataError naming a missing column
  or an incomplete row."""
  header, rows = _rows(path)
  missing = [c for c in names if c not in header]
  if missing:
    raise DataError(f'{path} has no column {missing[0]!r} (its columns: {header}); set '
                    'config.files.text_column (and label_column)')
  out = []
  for row in rows:
    values = tuple(row.get(c) for c in names)
    # Every column needs a value; only the first (the text) may be an empty string.
    if any(v is None or (str(v).strip() == '' and c != names[0])
           for v, c in zip(values, names)):
      raise DataError(f'{path} line {row["_line"]}: expected a value in each of {list(names)}')
    out.append(tuple(str(v) for v in values))
  return out


def column(path: str, name: str) -> list[str]:
  """The values of one column of a table."""
  return [v for (v,) in _columns(path, (name,))]


def read_table(spec: str, split: str, text_column: str, label_column: str
               ) -> tuple[list[str], list[str]]:
  """(texts, raw labels as str) of a table split."""
  texts, labels = [], []
  for path in expand(spec, split):
    for text, label in _columns(path, (text_column, label_column)):
      texts.append(text)
      labels.append(label.strip())
  return texts, labels


def label_ids(raw: dict[str, list[str]], where: dict[str, str]) -> tuple[dict[str, np.ndarray],
                                                                         list[str]]:
  """Label strings -> ids, by the training split's values: integers 0..C-1 stay themselves
  (when every training label is one), names take their sorted order. A value the
  training split lacks is a DataError naming the split's files."""
  train = raw['train']
  if all(v.lstrip('-').isdigit() for v in train):
    values = sorted({int(v) for v in train})
    if values[0] < 0:
      raise DataError(f'{where["train"]}: integer labels must be 0..C-1, found {values[0]}')
    names = [str(i) for i in range(values[-1] + 1)]
  else:
    names = sorted(set(train))
  index = {n: i for i, n in enumerate(names)}
  out = {}
  for split, values in raw.items():
    unknown = sorted(set(values) - set(index))
    if unknown:
      raise DataError(f'files.{split}={where[split]!r} has label(s) {unknown[:5]} that the '
                      f'training files do not: they have {names[:20]}')
    out[split] = np.asarray([index[v] for v in values], np.int32)
  return out, names


def translation_file(prefix: str, lang: str, split: str) -> str:
  """PREFIX.LANG (or .gz) of a translation split."""
  for path in (f'{prefix}.{lang}', f'{prefix}.{lang}.gz'):
    if os.path.isfile(path):
      return path
  raise DataError(f'files.{split}={prefix!r}: neither {prefix}.{lang} nor {prefix}.{lang}.gz '
                  f'exists; a translation split is a prefix P of aligned files P.SRC and P.TGT')


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')


def image_folder(spec: str, split: str, classes: list[str] | None = None
                 ) -> tuple[list[str], np.ndarray, list[str]]:
  """(image paths, labels, class names) of a folder per class (FOLDER/CLASS/IMAGE). The
  training split decides the classes (sorted folder names); another split's folder must
  name only those. Every image's header is read now, so a file that is not an image is a
  DataError naming it before the first step."""
  try:
    from PIL import Image
  except ImportError:
    raise DataError('image folders need pillow: pip install pillow') from None
  paths = []
  for folder in _folders(spec, split):
    for name in sorted(os.listdir(folder)):
      sub = os.path.join(folder, name)
      if os.path.isdir(sub):
        images = sorted(f for f in os.listdir(sub) if f.lower().endswith(IMAGE_EXTENSIONS))
        paths += [(os.path.join(sub, f), name) for f in images]
  found = sorted({c for _, c in paths})
  if not paths:
    raise DataError(f'files.{split}={spec!r} holds no images in class folders (FOLDER/CLASS/'
                    f'IMAGE with an extension in {IMAGE_EXTENSIONS})')
  classes = found if classes is None else classes
  unknown = sorted(set(found) - set(classes))
  if unknown:
    raise DataError(f'files.{split}={spec!r} has class folder(s) {unknown[:5]} that the '
                    f'training folder does not: it has {classes[:20]}')
  for path, _ in paths:
    try:
      with Image.open(path) as im:
        im.verify()
    except Exception as e:   # pillow raises several kinds for a damaged file
      raise DataError(f'{path} is not a readable image ({type(e).__name__}: {e}): remove or '
                      'replace it') from None
  index = {c: i for i, c in enumerate(classes)}
  return [p for p, _ in paths], np.asarray([index[c] for _, c in paths], np.int32), classes


def _folders(spec: str, split: str) -> list[str]:
  """The folders a split's spec names, each existing."""
  folders = _parts(spec)
  for part in folders:
    if not os.path.isdir(part):
      raise DataError(f'files.{split}={spec!r}: {part!r} is not a folder; an image split is a '
                      'folder with a subfolder of images per class')
  return folders
