"""A small BERT pretrained with masked LM on your text by path, with its own WordPiece tokenizer.

  python -m tools.tokenizer --kind=wordpiece --vocab_size=8000 \
      --files=../shared/data/ptb/ptb.train.txt,../shared/data/sst2/train.tsv \
      --out=runs/tokenizers/wordpiece_ptb_sst2
  python train.py --config=configs/mlm_wordpiece.py --workdir=runs/mlm_wordpiece

The first round's pretraining for the SST-2 transfer (results/sweep_sst2_bert.md);
the recipe's is configs/mlm_wordpiece_long.py (configs/sst2_bert.py has the result).
Data (dataset='files', transformer/data/files.py): Penn Treebank's training text
and the sentences of SST-2's training split without their labels (in-domain
unlabelled text, as "task-adaptive pretraining", Gururangan et al. 2020; SST-2's
dev sentences are never read), each line a document encoded as [CLS] ... [SEP]
by the WordPiece tokenizer of tools/tokenizer.py (8,000 tokens, trained on the
same text), concatenated and cut into windows of 64 tokens. Validation: PTB's.
Masking as BERT (transformer/tasks/mlm.py) with the tokenizer's own [MASK].
Model, masking rate and optimizer: configs/mlm_ptb.py's (4 post-LN layers,
d_model 128, 4 heads, d_ff 512, exact GELU, learned positions, MLM head tied to
the embedding; AdamW (0.9, 0.98), warmup 200 steps to 1e-3, cosine to 1e-4 at
step 3,000, weight decay 0.01, clipping 1.0; batch 32).
"""

from configs import mlm_ptb


def get_config():
  c = mlm_ptb.get_config()   # its model, masking and optimizer; other text, another tokenizer
  c.dataset = 'files'
  c.files.train = '{data_dir}/ptb/ptb.train.txt,{data_dir}/sst2/train.tsv'
  c.files.validation = '{data_dir}/ptb/ptb.valid.txt'
  c.files.text_column = 'sentence'
  c.tokenizer = 'hf:runs/tokenizers/wordpiece_ptb_sst2'
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/accuracy',      # masked-token accuracy on PTB's validation text
    higher_is_better=True,
    reference=None,
    source='none: the pretraining stage of the SST-2 transfer recipe (configs/sst2_bert.py)',
    target=None,
    time_budget_min=None,
    runnable_here=True,
    why=None,
)
