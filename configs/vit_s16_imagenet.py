"""ViT-S/16 on ImageNet-1k from scratch: big_vision's plain ViT baseline (90 epochs).

  python train.py --config=configs/vit_s16_imagenet.py --workdir=runs/vit_s16_i1k
  python eval.py --config=configs/vit_s16_imagenet.py --workdir=runs/vit_s16_i1k

Recipe of Beyer, Zhai & Kolesnikov 2022, "Better plain ViT baselines for
ImageNet-1k" (big_vision configs/vit_s16_i1k.py): ViT-S/16 at 224x224 with
global average pooling, fixed 2-D sin-cos position embeddings and a tanh
pre-logits layer of width 384 (22.1M parameters); batch 1024; 90 epochs;
inception crop (5-100% of the area), horizontal flip, RandAugment(2, 10),
mixup with Beta(0.2, 0.2);
no dropout, no label smoothing; Adam (0.9, 0.999) with peak learning rate 1e-3,
10,000 linear warmup steps, cosine decay to 0, gradient clipping at 1.0, and
decoupled weight decay 1e-4 on the kernels. big_vision's weight decay is not
multiplied by the base learning rate (p -= schedule * (lr * adam + wd * p)),
while optax.adamw's is, so its wd=1e-4 is weight_decay=0.1 here (0.1 * 1e-3 =
1e-4). Evaluation: resize the shorter side to 256, central 224 crop.
Differences: we train on all of 'train' (big_vision holds out 1% as minival)
and keep Adam's first moment in float32 (big_vision: bfloat16).

Reference: 76.5% top-1 on the ImageNet validation set after 90 epochs (6-7 h on
a TPU v3-8 in big_vision); 150 epochs 78.5%, 300 epochs 80.0% (set
--config.num_train_steps accordingly: steps = epochs * 1,281,167 / 1024).

Data: TFDS 'imagenet2012' prepared as array_record (a manual download:
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in
<tfds_data_dir>/downloads/manual/; preparing needs tensorflow), read lazily with
tfds.data_source; decoding JPEGs needs pillow. The input pipeline (decode,
crop, RandAugment in NumPy) runs in `data_workers` host threads and prefetches
one batch. Measured on a 2-core CPU: inception crop + flip + RandAugment(2, 10)
+ mixup take about 7 ms per 375x500 image in one thread, before JPEG decoding,
i.e. roughly 7-12 CPU-seconds per batch of 1024: hosts need many cores per
accelerator or the input pipeline is the bottleneck.
Hardware: 8 accelerators with >= 40 GB each (or use grad_accum_steps).
Result of this config: not run yet (ImageNet-1k is a manual download not
available on the project's machine, and the run needs about 8 accelerators).
"""


from configs import base
from transformer.data.images import augment_config

TRAIN_EXAMPLES = 1_281_167


def get_config():
  c = base.get_config()
  c.task = 'classification'
  c.dataset = 'imagenet2012'
  c.eval_split = 'validation'
  c.data_workers = -1        # threads reading/augmenting images (-1: min(32, CPUs))
  c.data_processes = 0       # grain worker processes making batches ahead (0: none)
  c.batch_size = 1024
  c.eval_batch_size = 1000   # 50 batches cover the 50,000 validation images
  epochs = 90
  c.num_train_steps = -(-epochs * TRAIN_EXAMPLES // c.batch_size)   # 112,603
  c.log_every_steps = 50
  c.eval_every_steps = 5000
  c.checkpoint_every_steps = 2000
  c.model_preset = 'vit_s'
  c.model.update(dict(
      image_size=224, patch_size=16, pool='gap', positional='sinusoidal',
      representation_size=384, dtype='bfloat16'))
  c.augment = augment_config(crop='inception', inception_min_area=0.05, flip=True,
                             randaugment_layers=2, randaugment_magnitude=10.0, mixup=0.2,
                             eval_crop_fraction=0.875)
  c.optimizer = 'adamw'
  c.learning_rate = 1e-3
  c.schedule = 'cosine'
  c.warmup_steps = 10_000
  c.min_learning_rate = 0.0
  c.b1, c.b2, c.eps = 0.9, 0.999, 1e-8
  c.weight_decay = 0.1       # = big_vision wd 1e-4 (see the docstring)
  c.weight_decay_mask = 'matrices'
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.0
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/accuracy',      # a fraction: 0.765 is 76.5%
    higher_is_better=True,
    reference=0.765,
    source='Beyer, Zhai & Kolesnikov 2022, big_vision vit_s16_i1k: 90 epochs on a TPU v3-8',
    target=None,
    time_budget_min=None,
    runnable_here=False,
    why=('needs ImageNet-1k (a manual download, not available here) and about 8 accelerators: '
         '112,603 steps of batch 1024 (6-7 h on a TPU v3-8 in big_vision)'),
)
