"""A small GPT-2-shaped LM pretrained on PTB's and Multi30k's English text with a byte-level BPE.

  python -m tools.tokenizer --kind=bpe --vocab_size=8000 \
      --files=../shared/data/ptb/ptb.train.txt,../shared/data/multi30k/train.en.gz \
      --out=runs/tokenizers/bpe_ptb_m30k
  python train.py --config=configs/lm_gpt2_bpe.py --workdir=runs/lm_gpt2_bpe

The first stage of the BPE transfer recipe (configs/shakespeare_gpt2_bpe.py has
the second and the result).
Data (dataset='files', transformer/data/files.py): Penn Treebank's training text
and Multi30k's English training captions, each line a document, encoded with
the byte-level BPE of tools/tokenizer.py (8,000 tokens trained on the same text;
GPT-2's <|endoftext|> closes each line), windows of 64 tokens.
Validation: PTB's and Multi30k's validation text.
Model: GPT-2's architecture at the size of the Shakespeare char recipe: 4 pre-LN
layers, d_model 128, 4 heads, d_ff 512, GELU, learned positions, biases, output
tied to the embedding (exports as GPT2LMHeadModel).
AdamW (0.9, 0.99), warmup 100 steps to 1e-3, cosine to 1e-4, weight decay 0.1,
clipping 1.0; batch 32.
"""

from configs import lm_shakespeare_char


def get_config():
  c = lm_shakespeare_char.get_config()   # its model and optimizer; other text, BPE, batch 32
  c.dataset = 'files'
  c.files.train = '{data_dir}/ptb/ptb.train.txt,{data_dir}/multi30k/train.en.gz'
  c.files.validation = '{data_dir}/ptb/ptb.valid.txt,{data_dir}/multi30k/val.en.gz'
  c.tokenizer = 'hf:runs/tokenizers/bpe_ptb_m30k'
  c.batch_size = 32
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  c.model.use_bias = True   # GPT-2 has biases: the export is a GPT2LMHeadModel
  c.sample.prompt = 'the'
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/nll_per_char',   # nats per character of PTB's and Multi30k's validation
    higher_is_better=False,
    reference=None,
    source='none: the pretraining stage of the BPE transfer recipe '
           '(configs/shakespeare_gpt2_bpe.py)',
    target=None,
    time_budget_min=None,
    runnable_here=True,
    why=None,
)
