"""WMT14 English -> German, the paper's Transformer (base), for accelerators.

  python train.py --config=configs/wmt14_ende_base.py --workdir=runs/wmt14_base
  python -m tools.average --config=configs/wmt14_ende_base.py --workdir=runs/wmt14_base --num=5
  python eval.py --workdir=runs/wmt14_base --checkpoint=avg --config.eval_split=newstest2014

"Attention Is All You Need" (Vaswani et al. 2017), section 5 and Table 2/3:
the base model (6+6 layers, d_model 512, 8 heads, d_ff 2048, P_drop 0.1,
label smoothing 0.1), a shared source-target BPE vocabulary of about 37,000
tokens, batches of about 25,000 source + 25,000 target tokens, Adam (0.9,
0.98, 1e-9) with lr = d_model^-0.5 * min(step^-0.5, step * 4000^-1.5)
(schedule 'rsqrt', learning_rate 1.0), 100,000 steps (12 hours on 8 P100s),
the average of the last 5 checkpoints (written every 10 minutes; here every
1,000 steps, the last 5 kept), beam search with beam 4 and length penalty
alpha 0.6, output length at most input length + 50. The paper reports 27.3
BLEU on newstest2014 (tokenized BLEU; tensor2tensor's get_ende_bleu.sh:
Moses tokenization and compound splitting). Result of this config: not run
yet (it needs the WMT14 training data, a TFDS download the project's machine
cannot make without internet, and accelerators).

Here: the vocabulary is a SentencePiece BPE model of 37,000 pieces trained on
1M sentences sampled from both sides of the training pairs
(WORKDIR/spm_wmt14_translate_de_en.model). Training rows are packed
(config.packing: several pairs per row of 256 tokens per side, no attention
across pairs), and tokens_per_batch=25,000 counts real tokens: the rows per
batch are set from the packing's measured fill so that a batch holds about
25,000 real tokens on its fuller side, as the paper's ~25k source and ~25k
target tokens (logged at start; real_token_fraction in the train records).
batch_size is the row granularity (every batch has a multiple of 8 rows, which
the data-parallel devices must divide). Training pairs longer than 256
pieces + EOS on either side are skipped. Computation in bfloat16.

Data: TFDS 'wmt14_translate/de-en' (train 4.5M pairs; newstest2014 is its
test split), which must be prepared as array_record where tensorflow is
installed; or, with data_dir set, DATA_DIR/wmt14/train.{en,de} and
newstest2014.{en,de} as plain text (shared/data has newstest2014 only).

eval.py reports bleu (sacreBLEU on detokenized output, with its signature),
tokenized_bleu ('intl' tokens, mixed case; close to the paper's tokenized BLEU)
and writes WORKDIR/translations_newstest2014_step<N>.txt. For the official
sacreBLEU score: sacrebleu DATA_DIR/wmt14/newstest2014.de -i that file.
"""

import ml_collections

from configs import base


def get_config():
  c = base.get_config()
  c.task = 'translation'
  c.dataset = 'wmt14_translate/de-en'
  c.source_lang = 'en'
  c.target_lang = 'de'
  c.vocab_size = 37000
  c.spm_model_type = 'bpe'
  c.spm_max_sentences = 1_000_000
  c.seq_len = 256                      # longest training pair (pieces + EOS per side)
  c.bucket_boundaries = ()             # default: 8, 12, ..., 28, then 4 per doubling up to 256
  c.tokens_per_batch = 25000           # per side: real tokens (packing), as the paper's ~25k
  c.packing = True                     # several pairs per row of seq_len tokens (data/packing.py)
  c.batch_size = 8                     # row granularity
  c.eval_batch_size = 64
  c.eval_split = 'newstest2013'       # newstest2014: once, at the end (eval.py)
  c.num_train_steps = 100_000
  c.log_every_steps = 100
  c.eval_every_steps = 5000
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 5               # the paper averaged the last 5 checkpoints
  c.model_preset = 'base'              # 6+6 layers, 512, 8 heads, 2048, dropout 0.1
  c.model.update({'share_embeddings': True, 'logits_via_embedding': True,
                  'dtype': 'bfloat16', 'attention_impl': 'auto'})
  c.optimizer = 'adam'
  c.b1, c.b2, c.eps = 0.9, 0.98, 1e-9
  c.learning_rate = 1.0                # the paper's formula (transformer/optim.py 'rsqrt')
  c.schedule = 'rsqrt'
  c.warmup_steps = 4000
  c.label_smoothing = 0.1
  c.decoding = ml_collections.ConfigDict({
      'method': 'beam', 'beam_size': 4, 'alpha': 0.6, 'extra_len': 50,
      'max_eval_sentences': -1, 'batch_size': 64,
      'eos_rule': 'all'})                # the paper's (tensor2tensor's) beam EOS rule; 'top_k': Hugging Face's
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='newstest2014/tokenized_bleu',   # eval.py --checkpoint=avg; closest to the paper's
    higher_is_better=True,
    reference=27.3,
    source='Vaswani et al. 2017, Table 2: base model, newstest2014 EN-DE, tokenized BLEU',
    target=None,
    time_budget_min=None,
    runnable_here=False,
    why=('needs the WMT14 training data (4.5M pairs, a TFDS download; no internet here, '
         'shared/data has newstest2014 only) and accelerators: 100,000 steps of ~25,000-token '
         'batches (12 hours on 8 P100s in the paper)'),
)
