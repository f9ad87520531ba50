"""ViT-B/16 on ImageNet-1k from scratch: the AugReg recipe (300 epochs).

  python train.py --config=configs/vit_b16_imagenet.py --workdir=runs/vit_b16_i1k
  python eval.py --config=configs/vit_b16_imagenet.py --workdir=runs/vit_b16_i1k

Recipe of Steiner et al. 2021, "How to train your ViT? Data, Augmentation, and
Regularization in Vision Transformers", as big_vision's configs/vit_i1k.py runs
it for B/16 (its 'medium2' setting): ViT-B/16 at 224x224 with a class token,
learned position embeddings and a tanh pre-logits layer of width 768 (87.2M
parameters); batch 4096; 300 epochs; inception crop, horizontal flip,
RandAugment(2, 15), mixup with Beta(0.5, 0.5); no dropout, no label
smoothing; Adam (0.9, 0.999) with peak learning rate 1e-3, 10,000 warmup
steps, cosine decay to 0, gradient clipping at 1.0, decoupled weight decay
1e-4 (big_vision's convention, which is weight_decay=0.1 for optax.adamw here:
see configs/vit_s16_imagenet.py).
Evaluation: shorter side 256, central 224 crop.

Reference: Steiner et al. (their Fig. 4) report roughly 79% top-1 for B/16
trained on ImageNet-1k alone for 300 epochs with this kind of recipe (read the
exact number for 'medium2' off the paper); DeiT-B (Touvron et al. 2021), with a
heavier recipe (RandAugment(9, 0.5), mixup + CutMix, random erasing,
stochastic depth, repeated augmentation), 81.8%. For 90 epochs the plain
S/16 baseline (configs/vit_s16_imagenet.py, 76.5%) is the better-tested choice.

Data and input pipeline: as configs/vit_s16_imagenet.py.
Hardware: 8+ accelerators with >= 80 GB each; with less memory use
--config.grad_accum_steps=2 (or 4), which keeps the batch and the result.
Result of this config: not run yet (ImageNet-1k is a manual download not
available on the project's machine, and the run needs 8+ large accelerators).
"""


from configs import base
from transformer.data.images import augment_config

TRAIN_EXAMPLES = 1_281_167


def get_config():
  c = base.get_config()
  c.task = 'classification'
  c.dataset = 'imagenet2012'
  c.eval_split = 'validation'
  c.data_workers = -1
  c.data_processes = 0       # grain worker processes making batches ahead (0: none)
  c.batch_size = 4096
  c.eval_batch_size = 1000
  epochs = 300
  c.num_train_steps = -(-epochs * TRAIN_EXAMPLES // c.batch_size)   # 93,836
  c.log_every_steps = 50
  c.eval_every_steps = 2500
  c.checkpoint_every_steps = 2000
  c.model_preset = 'vit_b'
  c.model.update(dict(
      image_size=224, patch_size=16, pool='cls', positional='learned',
      representation_size=768, dtype='bfloat16'))
  c.augment = augment_config(crop='inception', inception_min_area=0.05, flip=True,
                             randaugment_layers=2, randaugment_magnitude=15.0, mixup=0.5,
                             eval_crop_fraction=0.875)
  c.optimizer = 'adamw'
  c.learning_rate = 1e-3
  c.schedule = 'cosine'
  c.warmup_steps = 10_000
  c.min_learning_rate = 0.0
  c.b1, c.b2, c.eps = 0.9, 0.999, 1e-8
  c.weight_decay = 0.1
  c.weight_decay_mask = 'matrices'
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.0
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/accuracy',      # a fraction
    higher_is_better=True,
    reference=0.79,
    source=('Steiner et al. 2021, Fig. 4: roughly 79% for B/16 on ImageNet-1k, 300 epochs; '
            'read off a figure, approximate'),
    target=None,
    time_budget_min=None,
    runnable_here=False,
    why=('needs ImageNet-1k (a manual download, not available here) and 8+ accelerators with '
         '>= 80 GB: 93,836 steps of batch 4096'),
)
