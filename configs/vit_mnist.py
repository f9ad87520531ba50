"""A small ViT on MNIST, sized for 2 CPU cores (target: >= 98.5% test accuracy in 10 minutes).

  python train.py --config=configs/vit_mnist.py --workdir=runs/vit_mnist \\
      --config.data_dir=../shared/data
  python eval.py --config=configs/vit_mnist.py --workdir=runs/vit_mnist \\
      --config.eval_split=test \\
      --config.data_dir=../shared/data      # + confusion matrix (CSV, PNG), per-class accuracy

Data: the original IDX files in shared/data/mnist (60,000 train / 10,000 test
28x28 digits; TFDS 'mnist' when data_dir and $TRANSFORMER_DATA_DIR are unset),
standardized with the MNIST pixel mean/std (0.1307, 0.3081). Augmentation:
random shifts of up to 2 pixels (pad 2, random 28x28 crop); no flips (digits
are not mirror-symmetric).

Model: pre-LN ViT, patch 7 (a 4x4 grid of 16 patches), width 64, 4 layers,
4 heads, MLP 128, learned position embeddings, global average pooling, no
dropout (139k parameters). AdamW (b2 0.999, weight decay 0.05 on matrices),
peak learning rate 3e-3 after 200 warmup steps, cosine decay to 1e-5, gradient
clipping at 1.0, batch 128, 5,000 steps (10.7 epochs).

Validation and test: training uses the first 55,000 training images and
evaluates on the last 5,000 ('validation', config.validation_holdout); the
recipe is chosen on validation, and the test split is evaluated once, at the
end, by the eval.py command above.

Target: >= 99.0% test accuracy (>= 98.5% within 10 minutes before): met.
Result (results/vit_mnist.json with its artifacts in results/vit_mnist/,
2026-12-02, the commands above, quiet 2-core AMD EPYC CPU): 99.14% test
accuracy (all 10,000 images, evaluated once) and 99.10% validation accuracy at
step 5,000; 3 min 47 s from the first to the last logged training step, 4 min
05 s for the whole train.py command.

History of earlier runs (trained on all 60,000 images: 99.05% test; without the
shifts; patch 4): benchmarks/RESULTS.md.
"""


from configs import base
from transformer.data.images import augment_config


def get_config():
  c = base.get_config()
  c.task = 'classification'
  c.dataset = 'mnist'
  c.validation_holdout = 5000        # the last 5,000 training images: chosen on, never trained on
  c.eval_split = 'validation'        # test: once, at the end (eval.py --config.eval_split=test)
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.num_train_steps = 5000
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  c.model.update(dict(
      image_size=28, patch_size=7, d_model=64, num_heads=4, d_ff=128, num_encoder_layers=4,
      num_decoder_layers=0, dropout_rate=0.0, norm_position='pre', activation='gelu',
      positional='learned', pool='gap', scale_embeddings=False))
  c.augment = augment_config(crop='random', crop_padding=2)
  c.optimizer = 'adamw'
  c.learning_rate = 3e-3
  c.schedule = 'cosine'
  c.warmup_steps = 200
  c.min_learning_rate = 1e-5
  c.b1, c.b2, c.eps = 0.9, 0.999, 1e-8
  c.weight_decay = 0.05
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.0
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='test/accuracy',            # a fraction: 0.985 is 98.5%
    higher_is_better=True,
    reference=None,
    source="no external reference; the project's target",
    target=0.99,                       # issue 15: >= 99.0% test accuracy
    time_budget_min=10,                # ... within 10 minutes on 2 CPU cores
    runnable_here=True,
    why=None,
)
