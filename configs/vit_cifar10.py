"""A small ViT trained from scratch on CIFAR-10 (TFDS), for an accelerator.

  python train.py --config=configs/vit_cifar10.py --workdir=runs/vit_cifar10
  python eval.py --config=configs/vit_cifar10.py --workdir=runs/vit_cifar10

Data: TFDS 'cifar10' (50,000 train / 10,000 test 32x32 RGB images) read with
tfds.data_source, so it must be prepared as array_record first (preparing
needs tensorflow: tfds.builder('cifar10', file_format='array_record')
.download_and_prepare(); point --config.tfds_data_dir or $TFDS_DATA_DIR at it)
and decoding needs pillow. The splits are decoded into memory once. Pixels are
standardized with the CIFAR-10 channel mean/std. Augmentation: random 32x32
crops of the image zero-padded by 4 pixels and horizontal flips (the standard
CIFAR recipe); add RandAugment with --config.augment.randaugment_layers=2.

Model: pre-LN ViT, patch 4 (an 8x8 grid of 64 patches), width 256, 6 layers,
8 heads, MLP 512, learned position embeddings, global average pooling,
dropout 0.1 (3.2M parameters). AdamW (b2 0.999, weight decay 0.05), peak
learning rate 1e-3 after 5 epochs of warmup, cosine decay to 1e-5, gradient
clipping at 1.0, label smoothing 0.1, batch 512, 200 epochs (19,532 steps),
bfloat16 compute.

Reference: small ViTs trained from scratch on CIFAR-10 with crop + flip reach
about 80% test accuracy after 200 epochs (ViTs lack the convolutional prior;
stronger augmentation such as RandAugment and mixup adds several points).
Hardware: one GPU. Result of this config: not run yet (the project's machine
has neither the internet access the TFDS download needs nor a GPU).
"""


from configs import base
from transformer.data.images import augment_config

TRAIN_EXAMPLES = 50_000


def get_config():
  c = base.get_config()
  c.task = 'classification'
  c.dataset = 'cifar10'
  c.eval_split = 'test'
  c.data_workers = -1        # threads reading/augmenting images (-1: automatic)
  c.data_processes = 0       # grain worker processes making batches ahead (0: none)
  c.batch_size = 512
  c.eval_batch_size = 1000
  epochs = 200
  c.num_train_steps = -(-epochs * TRAIN_EXAMPLES // c.batch_size)   # 19,532
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 2000
  c.model.update(dict(
      image_size=32, patch_size=4, d_model=256, num_heads=8, d_ff=512, num_encoder_layers=6,
      num_decoder_layers=0, dropout_rate=0.1, norm_position='pre', activation='gelu',
      positional='learned', pool='gap', scale_embeddings=False, dtype='bfloat16'))
  c.augment = augment_config(crop='random', crop_padding=4, flip=True)
  c.optimizer = 'adamw'
  c.learning_rate = 1e-3
  c.schedule = 'cosine'
  c.warmup_steps = 5 * TRAIN_EXAMPLES // c.batch_size
  c.min_learning_rate = 1e-5
  c.b1, c.b2, c.eps = 0.9, 0.999, 1e-8
  c.weight_decay = 0.05
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.1
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='test/accuracy',            # a fraction
    higher_is_better=True,
    reference=0.80,
    source=('small ViTs trained from scratch with crop + flip, 200 epochs: about 80%; '
            'a rule of thumb, no single paper'),
    target=None,
    time_budget_min=None,
    runnable_here=False,
    why=('needs the TFDS cifar10 download (no internet here) prepared as array_record with '
         'tensorflow, and a GPU: 19,532 steps of batch 512'),
)
