"""Fine-tune the BERT of mlm_ptb as a sentence classifier on SST-2 (BERT's second stage).

  python train.py --config=configs/mlm_ptb.py --workdir=runs/mlm_ptb            # pretrain
  python train.py --config=configs/sst2_from_mlm_ptb.py --workdir=runs/sst2     # fine-tune

Data: GLUE's SST-2 (binary sentiment; 67,349 training sentences, 872 in
validation): by TFDS name (glue/sst2), or with data_dir from GLUE's own files
DATA_DIR/sst2/train.tsv and dev.tsv. Sentences are lowercased and encoded with
PTB's word vocabulary (vocab_from='ptb': the ids mlm_ptb was pretrained on;
words outside it become <unk>), at most 64 tokens.
Model: mlm_ptb's encoder and embeddings (init_from=runs/mlm_ptb); the pooler
and the 2-class classifier start fresh (transformer/pretrained.py).
AdamW at 1e-4 with 10% warmup, linear decay, 2,000 steps of 32 sentences
(about one epoch), dropout 0.1.

Result: not run. PTB's word vocabulary leaves many of SST-2's words <unk>; the recipe
with a result is configs/sst2_bert.py (a BERT pretrained with its own WordPiece
tokenizer, through Hugging Face's layout and back). The pipeline is tested end to
end in tests/tasks/test_mlm.py.
"""

from configs import base, mlm_ptb


def get_config():
  c = base.get_config()
  c.task = 'text_classification'
  c.dataset = 'sst2'
  c.vocab_from = 'ptb'
  c.seq_len = 64
  c.batch_size = 32
  c.num_train_steps = 2000
  c.log_every_steps = 100
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  c.init_from = 'runs/mlm_ptb'
  c.model = mlm_ptb.get_config().model
  c.optimizer = 'adamw'
  c.learning_rate = 1e-4
  c.schedule = 'linear'
  c.warmup_steps = 200
  c.weight_decay = 0.01
  c.grad_clip_norm = 1.0
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/accuracy',
    higher_is_better=True,
    reference=None,
    source='none at this size (BERT-base: 93.5, Devlin et al. 2019, Table 1)',
    target=None,
    time_budget_min=None,
    runnable_here=True,
    why=None,
)
