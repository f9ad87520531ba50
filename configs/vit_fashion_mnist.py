"""A small ViT on Fashion-MNIST, sized for 2 CPU cores (target: >= 91% test accuracy in 20 minutes).

  python train.py --config=configs/vit_fashion_mnist.py --workdir=runs/vit_fashion \\
      --config.data_dir=../shared/data
  python eval.py --config=configs/vit_fashion_mnist.py --workdir=runs/vit_fashion \\
      --config.eval_split=test \\
      --config.data_dir=../shared/data      # + confusion matrix (CSV, PNG), per-class accuracy

Data: the original IDX files in shared/data/fashion_mnist (60,000 train / 10,000
test 28x28 images, 10 balanced classes; TFDS 'fashion_mnist' when data_dir and
$TRANSFORMER_DATA_DIR are unset), standardized with the Fashion-MNIST pixel
mean/std (0.2860, 0.3530). Augmentation: random horizontal flips (clothes are
mirror-symmetric; the usual Fashion-MNIST augmentation).

Model: pre-LN ViT with a convolutional stem (models.ConvStem: a 3x3 stride-2
convolution of 32 channels, one stride-1 3x3 convolution of 32 channels at
that 14x14 resolution (stem_extra_convs=1), a 3x3 stride-2 convolution of 64
channels, each with LayerNorm + GELU, then a 1x1 projection onto the 7x7 grid
that 4x4 patches would give), width 64, 4 layers, 4 heads, MLP 128, learned
position embeddings, global average pooling, no dropout (170,154
parameters). AdamW (b2 0.999, weight decay 0.05 on matrices), peak learning
rate 1e-3 after 1,500 warmup steps, cosine decay to 1e-5, gradient clipping
at 1.0, label smoothing 0.1, batch 32, 24,000 steps (12.8 epochs).

Validation and test: training uses the first 55,000 training images and
evaluates on the last 5,000 ('validation', config.validation_holdout); recipes
are chosen on validation, and the test split is evaluated once, at the end, by
the eval.py command above.

Target: >= 92.0% test accuracy within 20 minutes on 2 CPU cores: not met.
Result (results/vit_fashion_mnist.json with its artifacts in
results/vit_fashion_mnist/, 2026-12-02, the commands above, quiet 2-core AMD
EPYC CPU): 91.13% test accuracy (all 10,000 images, evaluated once) and 91.72%
validation accuracy at step 24,000 (87.98% and 90.52% at steps 8,000 and
16,000); 18 min 05 s from the first to the last logged training step, 18 min
43 s for the whole train.py command. Weakest class: Shirt, 73.3%. The recipe
was chosen when test was the evaluation split and training used all 60,000
images (91.77% test then). configs/vit_fashion_mnist_tta.py adds mirror-averaged
evaluation (chosen on validation) and trains the final model on all 60,000
images: 92.05% +- 0.15 test over 3 seeds (issue 28).

History of earlier runs (other batch sizes, no extra stem conv, a wider MLP),
why batch 32, and the run on all 60,000 images: benchmarks/RESULTS.md.
"""


from configs import base
from transformer.data.images import augment_config


def get_config():
  c = base.get_config()
  c.task = 'classification'
  c.dataset = 'fashion_mnist'
  c.validation_holdout = 5000        # the last 5,000 training images: chosen on, never trained on
  c.eval_split = 'validation'        # test: once, at the end (eval.py --config.eval_split=test)
  c.batch_size = 32
  c.eval_batch_size = 1000
  c.num_train_steps = 24000
  c.log_every_steps = 400
  c.eval_every_steps = 8000
  c.checkpoint_every_steps = 8000
  c.model.update(dict(
      image_size=28, patch_size=4, d_model=64, num_heads=4, d_ff=128, num_encoder_layers=4,
      num_decoder_layers=0, dropout_rate=0.0, norm_position='pre', activation='gelu',
      positional='learned', pool='gap', stem='conv', stem_extra_convs=1,
      scale_embeddings=False))
  c.augment = augment_config(flip=True)
  c.optimizer = 'adamw'
  c.learning_rate = 1e-3
  c.schedule = 'cosine'
  c.warmup_steps = 1500
  c.min_learning_rate = 1e-5
  c.b1, c.b2, c.eps = 0.9, 0.999, 1e-8
  c.weight_decay = 0.05
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.1
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='test/accuracy',            # a fraction: 0.91 is 91%
    higher_is_better=True,
    reference=None,
    source="no external reference; the project's target",
    target=0.92,                       # issue 15: >= 92.0% test accuracy ...
    time_budget_min=20,                # ... within 20 minutes on 2 CPU cores
    runnable_here=True,
    why=None,
)
