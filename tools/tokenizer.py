"""Train a subword tokenizer on your text, in Hugging Face's tokenizer.json format.

  python -m tools.tokenizer --kind=wordpiece --files='corpus/*.txt,sst2/train.tsv' \
      --vocab_size=8000 --out=tok/bert
  python -m tools.tokenizer --kind=bpe --files=ptb/ptb.train.txt --vocab_size=8000 --out=tok/gpt2

Writes OUT/tokenizer.json and OUT/tokenizer_config.json (its special tokens), which
`config.tokenizer='hf:OUT'` reads in every text pipeline (transformer/data/tokenizers.py
HFTokenizer), which an export carries to Hugging Face (tools.convert export), and which
transformers' AutoTokenizer loads. Kinds (Hugging Face's `tokenizers` package trains them):

- wordpiece: BERT's (lowercased, accents stripped, punctuation split; [PAD]=0, [UNK],
  [CLS], [SEP], [MASK]; every text is encoded as [CLS] ... [SEP]).
- bpe: GPT-2's byte-level BPE (any text, no unknown token; <|endoftext|>=0 is the
  start, end and padding token; nothing is added when encoding).

--files: paths or globs separated by commas; each non-empty line of a text file is
a sentence, and a .tsv/.csv/.jsonl table gives its --text_column (transformer/data/files.py).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from tools import cli

KINDS = ('wordpiece', 'bpe')
WORDPIECE_SPECIALS = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
BPE_SPECIAL = '<|endoftext|>'

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_enum('kind', 'wordpiece', KINDS, 'wordpiece (BERT) or bpe (GPT-2, byte-level).')
  flags.DEFINE_string('files', None, 'The training text: paths or globs, comma-separated.')
  flags.DEFINE_string('text_column', 'sentence', 'The text column of tables among --files.')
  flags.DEFINE_integer('vocab_size', 8000, 'Tokens in the vocabulary, special ones included.')
  flags.DEFINE_integer('min_frequency', 2, 'Pieces seen fewer times are not merged in.')
  flags.DEFINE_string('out', None, 'The folder to write tokenizer.json and its config to.')


def train(kind: str, sentences, vocab_size: int, min_frequency: int = 2):
  """A `tokenizers.Tokenizer` of `kind` trained on the iterable of str `sentences`, and its
  tokenizer_config.json as a dict."""
  from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
  from tokenizers import trainers
  if kind == 'wordpiece':
    tok = Tokenizer(models.WordPiece(unk_token='[UNK]'))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(WORDPIECE_SPECIALS))
    tok.train_from_iterator(sentences, trainer)
    cls, sep = tok.token_to_id('[CLS]'), tok.token_to_id('[SEP]')
    tok.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B:1 [SEP]:1',
        special_tokens=[('[CLS]', cls), ('[SEP]', sep)])
    config = {'tokenizer_class': 'PreTrainedTokenizerFast', 'do_lower_case': True,
              'pad_token': '[PAD]', 'unk_token': '[UNK]', 'cls_token': '[CLS]',
              'sep_token': '[SEP]', 'mask_token': '[MASK]'}
  elif kind == 'bpe':
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=[BPE_SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sentences, trainer)
    config = {'tokenizer_class': 'PreTrainedTokenizerFast', 'bos_token': BPE_SPECIAL,
              'eos_token': BPE_SPECIAL, 'unk_token': BPE_SPECIAL, 'pad_token': BPE_SPECIAL}
  else:
    raise ValueError(f'kind={kind!r} is not one of {KINDS}')
  return tok, config


def save(tok, config: dict, out: str) -> None:
  os.makedirs(out, exist_ok=True)
  tok.save(os.path.join(out, 'tokenizer.json'))
  with open(os.path.join(out, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
    json.dump(dict(config, model_max_length=1_000_000), f, indent=2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  if not FLAGS.files or not FLAGS.out:
    raise app.UsageError('--files and --out are required')
  from transformer import logs
  from transformer.data import DataError
  from transformer.data import files as files_lib
  from transformer.data.tokenizers import HFTokenizer
  logs.setup_logging()
  if FLAGS.vocab_size < 300:
    raise DataError(f'--vocab_size={FLAGS.vocab_size} is too small: at least 300 (the byte '
                    'alphabet and the special tokens)')
  sentences = files_lib.documents(FLAGS.files, 'train', 'line', FLAGS.text_column)
  tok, config = train(FLAGS.kind, sentences, FLAGS.vocab_size, FLAGS.min_frequency)
  save(tok, config, FLAGS.out)
  check = HFTokenizer.from_dir(FLAGS.out)
  logs.log.info('Wrote %s: a %s tokenizer of %d tokens from %d sentences (%s)', FLAGS.out,
                FLAGS.kind, check.vocab_size, len(sentences), check.fingerprint)


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
