"""A small ViT on Fashion-MNIST, sized for 2 CPU cores (target: >= 91% test accuracy in 20 minutes).

  python train.py --config=configs/vit_fashion_mnist.py --workdir=runs/vit_fashion \\
      --config.data_dir=../shared/data
  python eval.py --config=configs/vit_fashion_mnist.py --workdir=runs/vit_fashion \\
      --config.data_dir=../shared/data      # + confusion_matrix.csv, per-class accuracy

Data: the original IDX files in shared/data/fashion_mnist (60,000 train / 10,000
test 28x28 images, 10 balanced classes; TFDS 'fashion_mnist' when data_dir and
$TRANSFORMER_DATA_DIR are unset), standardized with the Fashion-MNIST pixel
mean/std (0.2860, 0.3530). Augmentation: random horizontal flips (clothes are
mirror-symmetric; the usual Fashion-MNIST augmentation).

Model: pre-LN ViT, patch 4 (49 patches), width 64, 4 layers, 4 heads, MLP 128,
learned position embeddings, global average pooling, no dropout (138,890
parameters). AdamW (b2 0.999, weight decay 0.05 on matrices), peak learning
rate 2e-3 after 300 warmup steps, cosine decay to 1e-5, gradient clipping at
1.0, label smoothing 0.1, batch 128, 6,000 steps (12.8 epochs).

Target: >= 91% test accuracy within 20 minutes on 2 CPU cores: NOT MET.
Measured 2026-12-01 on the quiet 2-core CPU with the command above: 89.25%
test accuracy (all 10,000 images) at step 6,000, 19 min 02 s from launch to
the last evaluation (6.3 steps/s, 806 training images/s); 82.67%, 84.06%,
86.96%, 88.16%, 88.86% at steps 1,000-5,000; training accuracy 91.7% at
step 5,100 (still rising: the model underfits in this budget). The earlier
patch-7 model (width 96, 6 layers, 456k parameters) reached 89.13% in 6,500
steps / 16.5 minutes (benchmarks/RESULTS.md). What is left to try: a
convolutional stem (hybrid ViT) or more epochs on a faster machine.
"""


from configs import base
from transformer.data.images import augment_config


def get_config():
  c = base.get_config()
  c.task = 'classification'
  c.dataset = 'fashion_mnist'
  c.eval_split = 'test'
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.num_train_steps = 6000
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  c.model.update(dict(
      image_size=28, patch_size=4, d_model=64, num_heads=4, d_ff=128, num_encoder_layers=4,
      num_decoder_layers=0, dropout_rate=0.0, norm_position='pre', activation='gelu',
      positional='learned', pool='gap', scale_embeddings=False))
  c.augment = augment_config(flip=True)
  c.optimizer = 'adamw'
  c.learning_rate = 2e-3
  c.schedule = 'cosine'
  c.warmup_steps = 300
  c.min_learning_rate = 1e-5
  c.b1, c.b2, c.eps = 0.9, 0.999, 1e-8
  c.weight_decay = 0.05
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.1
  c.init_from = ''
  return c


# Reference and target for docs/RESULTS.md (python -m transformer.report build).
REFERENCE = dict(
    metric='test/accuracy',            # a fraction: 0.91 is 91%
    higher_is_better=True,
    reference=None,
    source="no external reference; the project's target",
    target=0.91,                       # >= 91% test accuracy ...
    time_budget_min=20,                # ... within 20 minutes on 2 CPU cores
    runnable_here=True,
    why=None,
)
