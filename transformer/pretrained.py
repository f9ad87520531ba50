"""Starting a run from other weights: `config.init_from` (fine-tuning).

`config.init_from` names a workdir (or its checkpoints/ folder): one trained
by train.py, or one written by `python -m tools.convert import` from a
Hugging Face checkpoint. A fresh run of any task takes every parameter from
that workdir's newest good checkpoint (`workdir.restore_params`: verified
against its fingerprints), adapted to the new model
where the two may legitimately differ (`adapt_params`); the optimizer starts
fresh at step 0. Resuming a run that already has checkpoints ignores
`init_from` (its own checkpoint wins).
"""

from __future__ import annotations

import flax
import jax.numpy as jnp
import numpy as np

from transformer import layers
from transformer.errors import ConfigError

# Parameters that may be re-initialized when their shape changed: task heads.
HEAD_NAMES = ('head', 'classifier')


def adapt_params(pretrained: dict, params: dict) -> tuple[dict, list[str]]:
  """`params` with every leaf taken from `pretrained`, adapted where shapes differ.

  - `pos_embedding` of another grid (a ViT checkpoint at another resolution or
    patch count): resized bilinearly with `layers.resize_posemb`;
  - a task head (`head`, `classifier`) of another class count: kept as initialized;
  - a leaf missing from `pretrained` (e.g. a new pre-logits layer or head):
    kept as initialized.
  Any other shape mismatch is an error. Returns (params, notes on what was adapted).
  """
  old = flax.traverse_util.flatten_dict(flax.core.unfreeze(pretrained))
  new = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  out, notes = {}, []
  for key, init in new.items():
    name = '/'.join(key)
    if key not in old:
      out[key] = init
      notes.append(f'{name}: not in the checkpoint, kept as initialized')
      continue
    value = np.asarray(old[key])
    if value.shape == init.shape:
      out[key] = jnp.asarray(value, init.dtype)
    elif key[-1] == 'pos_embedding' and value.ndim == 3:
      n = init.shape[1]
      side = round(n ** 0.5)
      if side * side != n:
        raise ConfigError(f'{name}: the new grid of {n} patches is not square')
      out[key] = jnp.asarray(layers.resize_posemb(jnp.asarray(value), (side, side)), init.dtype)
      notes.append(f'{name}: resized {value.shape} -> {init.shape}')
    elif key[0] in HEAD_NAMES:
      out[key] = init
      notes.append(f'{name}: {value.shape} in the checkpoint, {init.shape} here; '
                   're-initialized (new classes)')
    else:
      raise ConfigError(f'init_from: {name} has shape {value.shape} in the checkpoint but '
                        f'{init.shape} in this model; only pos_embedding and the heads '
                        f'{HEAD_NAMES} may differ (give the model the checkpoint\'s fields, '
                        'and text data its vocabulary)')
  unused = sorted('/'.join(k) for k in old if k not in new)
  if unused:
    notes.append(f'{len(unused)} checkpoint arrays unused by this model: {", ".join(unused[:5])}'
                 + (' ...' if len(unused) > 5 else ''))
  return flax.traverse_util.unflatten_dict(out), notes
