"""A GPT-2-small-shaped LM (124M parameters, 1024 tokens of context) with nanoGPT's recipe
for reproducing GPT-2 on OpenWebText: for planning a run at scale (tools.plan) and for
training on your own text.

  python -m tools.plan --config=configs/gpt2_small.py --topology=v5e:2x4
  python train.py --config=configs/gpt2_small.py --workdir=runs/gpt2_small \\
      --config.files.train=OWT/train.txt --config.files.validation=OWT/val.txt \\
      --config.tokenizer=hf:GPT2_TOKENIZER_DIR

Model (GPT-2 small, Radford et al. 2019, and nanoGPT's model.py): 12 layers, width 768, 12
heads, feed-forward 3072, GELU, pre-LN, learned positions, biases, tied embeddings, no
dropout; the vocabulary of GPT-2's BPE (50,257) padded to 50,304 as nanoGPT does (a
multiple of 64), in bfloat16.

Recipe (nanoGPT's config/train_gpt2.py): about 0.5M tokens per step (480 sequences of
1024: nanoGPT's 12 per device x 40 accumulation steps), AdamW (0.9, 0.95, weight decay
0.1), learning rate 6e-4 with 2000 warmup steps and cosine decay to 6e-5 over 600,000
steps, gradient clipping at 1.0.

Data: `dataset='files'` (transformer/data/files.py): text files by path, tokenized with
GPT-2's tokenizer (`tokenizer='hf:DIR'`, a folder with its tokenizer.json, e.g. one that
`tools.convert import` wrote from a GPT-2 checkpoint). OpenWebText is not in shared/data,
so nothing here trains it; tools.plan plans it from its batch shapes.
"""

from configs import base


def get_config():
  c = base.get_config()
  c.task = 'lm'
  c.dataset = 'files'
  c.files.train = '{data_dir}/openwebtext/train.txt'
  c.files.validation = '{data_dir}/openwebtext/val.txt'
  c.vocab_size = 50304                 # GPT-2's 50,257 padded to a multiple of 64
  c.seq_len = 1024
  c.batch_size = 480                   # sequences per optimizer step: ~0.5M tokens
  c.num_train_steps = 600_000
  c.log_every_steps = 100
  c.eval_every_steps = 2000
  c.eval_batch_size = 64
  c.eval_max_batches = 200
  c.checkpoint_every_steps = 2000
  c.model.update(dict(
      d_model=768, num_heads=12, d_ff=3072, num_encoder_layers=0, num_decoder_layers=12,
      dropout_rate=0.0, norm_position='pre', activation='gelu', positional='learned',
      scale_embeddings=False, use_bias=True, logits_via_embedding=True, norm_epsilon=1e-5,
      dtype='bfloat16'))
  c.optimizer = 'adamw'
  c.learning_rate = 6e-4
  c.schedule = 'cosine'
  c.warmup_steps = 2000
  c.min_learning_rate = 6e-5
  c.b1, c.b2, c.eps = 0.9, 0.95, 1e-8
  c.weight_decay = 0.1
  c.grad_clip_norm = 1.0
  c.sample.prompt = 'The'
  return c


REFERENCE = dict(
    metric='validation/loss',
    higher_is_better=False,
    reference=2.85,
    source="nanoGPT README: GPT-2 (124M) reproduced on OpenWebText, validation loss ~2.85 "
           'after 600k iterations (8 x A100 40GB, about 4 days)',
    target=None,
    time_budget_min=None,
    runnable_here=False,
    why='needs OpenWebText (about 9B tokens, not in shared/data) and accelerators',
)
