"""A small BERT pretrained with masked language modeling on Penn Treebank's text (CPU).

  python train.py --config=configs/mlm_ptb.py --workdir=runs/mlm_ptb

Data: PTB (Mikolov's word-level text, 10,000 words; shared/data/ptb), windows of
64 words, batch 32. BERT's masking (transformer/tasks/mlm.py): 15% of the tokens
selected, 80% [MASK] / 10% random / 10% kept, loss on the selected ones.
Model (models.EncoderOnly): BERT's architecture scaled down: 4 post-LN layers,
d_model 128, 4 heads, d_ff 512, exact GELU, learned positions, no token types
(one segment), dropout 0.1, masked-LM head tied to the embedding.
AdamW (0.9, 0.98), warmup 200 steps to 1e-3, cosine to 1e-4 at step 3,000,
weight decay 0.01 (as BERT), clipping at 1.0.

Result (results/mlm_ptb.json with its artifacts in results/mlm_ptb/,
2026-12-03, the command above, 2-core AMD EPYC CPU): masked-token accuracy
0.1627 on PTB's validation split at step 3,000 (whole split, 10,569 masked
tokens, masks fixed by config.seed; 0.1471 / 0.1594 at steps 1,000 / 2,000),
masked-token perplexity 347; the test split, evaluated once at the end
(`eval.py --workdir=runs/mlm_ptb --config.eval_split=test`): 0.1607. Always
guessing the most frequent word ('the') would score 0.056. 24.7 min from the
first to the last logged step (about 0.5 s per step; short test runs and a
pip install shared the cores for about 5 of those minutes). 2,108,562
parameters. Exported with `python -m tools.convert export`, the model loads in
transformers as BertForMaskedLM and gives the same logits to 9.5e-6
(benchmarks/hf_export_check.py, benchmarks/RESULTS.md).
"""

from configs import base


def get_config():
  c = base.get_config()
  c.task = 'mlm'
  c.dataset = 'ptb'
  c.seq_len = 64
  c.batch_size = 32
  c.num_train_steps = 3000
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.eval_batch_size = 64
  c.checkpoint_every_steps = 1000
  c.mlm = dict(mask_rate=0.15, max_predictions=0)
  c.model.update(dict(
      d_model=128, num_heads=4, d_ff=512, num_encoder_layers=4, num_decoder_layers=0,
      dropout_rate=0.1, norm_position='post', activation='gelu_exact', positional='learned',
      scale_embeddings=False, max_len=64, norm_epsilon=1e-12))
  c.optimizer = 'adamw'
  c.learning_rate = 1e-3
  c.schedule = 'cosine'
  c.warmup_steps = 200
  c.min_learning_rate = 1e-4
  c.b1, c.b2, c.eps = 0.9, 0.98, 1e-6
  c.weight_decay = 0.01
  c.grad_clip_norm = 1.0
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/accuracy',      # masked-token accuracy
    higher_is_better=True,
    reference=None,
    source='none: no published masked-LM number on PTB at this size',
    target=None,
    time_budget_min=None,
    runnable_here=True,
    why=None,
)
