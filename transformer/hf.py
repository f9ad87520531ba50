"""Hugging Face checkpoints in this library's parameter trees, and back.

    hf_config, state = read_checkpoint('path/to/gpt2')      # config.json + *.safetensors
    cfg, params = from_hf(hf_config, state)                  # a TransformerConfig and params
    logits = DecoderLM(cfg).apply({'params': params}, tokens)
    state = to_hf(hf_config['model_type'], cfg, params)      # tensor name -> array

Supported so far: GPT-2 (`GPT2LMHeadModel`, into `DecoderLM`), BERT
(`BertForPreTraining`, the layout of bert-base-uncased, or `BertForMaskedLM`, whose
absent pooler and next-sentence head start at random, into `EncoderOnly`) and
T5 (`T5ForConditionalGeneration`, v1.0 and v1.1, into `EncoderDecoder`) and ViT
(`ViTForImageClassification`, into `ViT`), and the Llama family (`LlamaForCausalLM`,
`Qwen2ForCausalLM`, `MistralForCausalLM`, into `DecoderLM`: rotary positions,
grouped key/value heads, SwiGLU, RMSNorm). Every one exports back (`to_hf`,
`hf_config_of`). A checkpoint
is a local directory holding the model's `config.json` and its weights as
safetensors (`model.safetensors`, or the shards of `model.safetensors.index.json`);
PyTorch `pytorch_model.bin` files are read when torch is installed.
Every tensor must be used and every parameter filled: unknown, missing or
mis-shaped tensors stop the conversion with one `ConversionError` naming them.

Weights are NumPy arrays throughout (no torch needed); tensors are float32
unless the checkpoint stores another float dtype, which is kept.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import numpy as np

from transformer.model_config import TransformerConfig
from transformer.errors import ConversionError  # noqa: F401  (re-exported)

Params = dict[str, Any]
log = logging.getLogger('transformer')


# ---------------------------------------------------------------------------
# Reading checkpoints.
# ---------------------------------------------------------------------------

def read_checkpoint(path: str) -> tuple[dict, dict[str, np.ndarray]]:
  """(config.json as a dict, tensor name -> NumPy array) of a local Hugging Face model dir."""
  config_path = os.path.join(path, 'config.json')
  if not os.path.isfile(config_path):
    raise ConversionError(f'{config_path} does not exist: point at a Hugging Face model '
                          'directory (config.json and model.safetensors), e.g. one saved '
                          'with save_pretrained() or downloaded with `huggingface-cli download`')
  with open(config_path, encoding='utf-8') as f:
    hf_config = json.load(f)
  return hf_config, read_weights(path)


class LazyWeights(Mapping):
  """Tensor name -> NumPy array of safetensors files, each read from its file only when it is
  looked up (nothing is kept): converting a checkpoint then holds the converted parameters
  and one source tensor at a time, not a second copy of the whole checkpoint."""

  def __init__(self, files: Mapping[str, str]):
    self.files = dict(files)   # name -> the .safetensors file holding it

  def __getitem__(self, name: str) -> np.ndarray:
    from safetensors import safe_open
    with safe_open(self.files[name], framework='numpy') as f:
      return f.get_tensor(name)

  def __iter__(self):
    return iter(self.files)

  def __len__(self) -> int:
    return len(self.files)


def _safetensors_names(path: str) -> list[str]:
  from safetensors import safe_open
  try:
    with safe_open(path, framework='numpy') as f:
      return list(f.keys())
  except Exception as e:   # safetensors raises its own error for a damaged header
    raise ConversionError(f'{path} is not a readable safetensors file ({e}): download it '
                          'again') from None


def read_weights(path: str) -> Mapping[str, np.ndarray]:
  """The tensors of a Hugging Face model directory: safetensors (one file, or shards through
  their index) read lazily (`LazyWeights`), or pytorch_model.bin (needs torch; read whole)."""
  single = os.path.join(path, 'model.safetensors')
  index = os.path.join(path, 'model.safetensors.index.json')
  if os.path.isfile(single):
    return LazyWeights({name: single for name in _safetensors_names(single)})
  if os.path.isfile(index):
    with open(index, encoding='utf-8') as f:
      shards = sorted(set(json.load(f)['weight_map'].values()))
    missing = [s for s in shards if not os.path.isfile(os.path.join(path, s))]
    if missing:
      raise ConversionError(f'{index} lists {len(missing)} shard(s) that are not in {path}: '
                            f'{missing}; download the whole checkpoint')
    files = {}
    for shard in shards:
      file = os.path.join(path, shard)
      files.update({name: file for name in _safetensors_names(file)})
    return LazyWeights(files)
  torch_file = os.path.join(path, 'pytorch_model.bin')
  if os.path.isfile(torch_file):
    try:
      import torch
    except ImportError:
      raise ConversionError(f'{torch_file} is a PyTorch file: install torch to read it, or '
                            'save the model as safetensors (save_pretrained(..., '
                            'safe_serialization=True))') from None
    loaded = torch.load(torch_file, map_location='cpu', weights_only=True)
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy()
            for k, v in loaded.items()}
  raise ConversionError(f'No weights in {path}: expected model.safetensors, '
                        'model.safetensors.index.json or pytorch_model.bin')


# ---------------------------------------------------------------------------
# Tensor bookkeeping shared by the architectures.
# ---------------------------------------------------------------------------

class _Tensors:
  """Takes tensors by name from a state dict; reports missing, mis-shaped and unused ones."""

  def __init__(self, state: Mapping[str, np.ndarray], prefix: str = '', ignore=()):
    # Names without the prefix, each read from `state` only when taken (a LazyWeights state
    # is never held whole).
    self.state = _Renamed(state, {k[len(prefix):] if prefix and k.startswith(prefix) else k: k
                                  for k in state})
    self.used: set[str] = {k for k in self.state if any(k.endswith(s) for s in ignore)}
    self.problems: list[str] = []

  def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if name not in self.state:
      self.problems.append(f'missing tensor {name} (expected shape {shape})')
      return None
    self.used.add(name)
    x = self.state[name]   # a NumPy array (_Renamed)
    if tuple(x.shape) != tuple(shape):
      self.problems.append(f'tensor {name} has shape {tuple(x.shape)}, expected {shape}')
      return None
    return x

  def finish(self, what: str) -> None:
    unused = sorted(set(self.state) - self.used)
    if unused:
      self.problems.append(f'unknown tensor(s) {unused}')
    if self.problems:
      raise ConversionError(f'{what}: ' + '; '.join(self.problems))


class _Renamed(Mapping):
  """`state` under other names ({new name: name in state}), read through on each lookup."""

  def __init__(self, state: Mapping[str, np.ndarray], names: dict[str, str]):
    self._state, self._names = state, names

  def __getitem__(self, name: str) -> np.ndarray:
    return np.asarray(self._state[self._names[name]])

  def __iter__(self):
    return iter(self._names)

  def __len__(self) -> int:
    return len(self._names)


def _norm(t: _Tensors, name: str, d: int) -> dict:
  return {'scale': t.take(f'{name}.weight', (d,)), 'bias': t.take(f'{name}.bias', (d,))}


class _Writer:
  """Collects tensors in the Hugging Face layout: torch Linears (out, in) and LayerNorms."""

  def __init__(self):
    self.s: dict[str, Any] = {}

  def linear(self, name: str, p: Params, n_in: int) -> None:
    self.s[name + '.weight'] = np.asarray(p['kernel']).reshape(n_in, -1).T
    self.s[name + '.bias'] = np.asarray(p['bias']).reshape(-1)

  def norm(self, name: str, p: Params) -> None:
    self.s[name + '.weight'], self.s[name + '.bias'] = p['scale'], p['bias']

  def bert_layer(self, lp: Params, cfg: TransformerConfig, prefix: str, attention: str,
                 attention_norm: str, mlp_norm: str) -> None:
    """The inverse of `_bert_layer`: one BERT / ViT encoder layer."""
    for name in ('query', 'key', 'value'):
      self.linear(f'{prefix}{attention}.{name}', lp['self_attention'][name], cfg.d_model)
    self.linear(prefix + 'attention.output.dense', lp['self_attention']['out'], cfg.d_model)
    self.norm(prefix + attention_norm, lp['self_attention_residual']['norm'])
    self.linear(prefix + 'intermediate.dense', lp['mlp']['wi'], cfg.d_model)
    self.linear(prefix + 'output.dense', lp['mlp']['wo'], cfg.d_ff)
    self.norm(prefix + mlp_norm, lp['mlp_residual']['norm'])

  def tensors(self) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(np.asarray(v)) for k, v in self.s.items()}


# ---------------------------------------------------------------------------
# GPT-2.
# ---------------------------------------------------------------------------

def gpt2_model_config(hf: Mapping[str, Any]) -> TransformerConfig:
  """GPT-2's config.json -> the DecoderLM config with the same architecture.

  Pre-LN with a final norm, learned positions, tanh-approximated GELU ('gelu_new'),
  biases everywhere, the output projection tied to the token embedding.
  """
  unsupported = [f'{k}={hf[k]!r}' for k, ok in (
      ('activation_function', ('gelu_new', 'gelu_pytorch_tanh')),
      ('scale_attn_weights', (True,)), ('scale_attn_by_inverse_layer_idx', (False,)),
      ('reorder_and_upcast_attn', (False,))) if k in hf and hf[k] not in ok]
  if unsupported:
    raise ConversionError(f'GPT-2 settings this library does not implement: {unsupported}')
  d = hf['n_embd']
  return TransformerConfig(
      vocab_size=hf['vocab_size'], d_model=d, num_heads=hf['n_head'],
      d_ff=hf.get('n_inner') or 4 * d, num_encoder_layers=0, num_decoder_layers=hf['n_layer'],
      max_len=hf['n_positions'], norm='layernorm', norm_position='pre',
      norm_epsilon=hf.get('layer_norm_epsilon', 1e-5), activation='gelu',
      positional='learned', scale_embeddings=False, share_embeddings=True,
      logits_via_embedding=True, use_bias=True, dropout_rate=0.0, attention_dropout_rate=0.0,
      deterministic=True)


def gpt2_params(state: Mapping[str, np.ndarray], cfg: TransformerConfig) -> Params:
  """GPT2LMHeadModel (or GPT2Model) tensors -> DecoderLM params.

  GPT-2's Conv1D weights are stored (in, out), as this library's kernels; its
  fused c_attn columns are [query | key | value], each head-major.
  """
  # attn.bias / attn.masked_bias: causal-mask buffers of older checkpoints, not weights.
  t = _Tensors(state, prefix='transformer.', ignore=('.attn.bias', '.attn.masked_bias'))
  d, h, k, f = cfg.d_model, cfg.num_heads, cfg.qkv_dim, cfg.d_ff
  wte = t.take('wte.weight', (cfg.vocab_size, d))
  params: Params = {'embed': {'embedding': wte},
                    'input': {'position': {'pos_embedding': t.take('wpe.weight',
                                                                   (cfg.max_len, d))}}}
  if 'lm_head.weight' in t.state:   # tied to wte in every GPT-2; refuse an untied one
    head = t.take('lm_head.weight', (cfg.vocab_size, d))
    if head is not None and wte is not None and not np.array_equal(head, wte):
      t.problems.append('lm_head.weight differs from wte.weight: an untied output layer')
  decoder: Params = {}
  for i in range(cfg.num_decoder_layers):
    p = f'h.{i}.'
    qkv_w = t.take(p + 'attn.c_attn.weight', (d, 3 * h * k))
    qkv_b = t.take(p + 'attn.c_attn.bias', (3 * h * k,))
    attention = {}
    for j, name in enumerate(('query', 'key', 'value')):
      cols = slice(j * h * k, (j + 1) * h * k)
      attention[name] = {
          'kernel': None if qkv_w is None else qkv_w[:, cols].reshape(d, h, k),
          'bias': None if qkv_b is None else qkv_b[cols].reshape(h, k)}
    out_w = t.take(p + 'attn.c_proj.weight', (h * k, d))
    attention['out'] = {'kernel': None if out_w is None else out_w.reshape(h, k, d),
                        'bias': t.take(p + 'attn.c_proj.bias', (d,))}
    decoder[f'layer_{i}'] = {
        'self_attention': attention,
        'self_attention_residual': {'norm': _norm(t, p + 'ln_1', d)},
        'mlp': {'wi': {'kernel': t.take(p + 'mlp.c_fc.weight', (d, f)),
                       'bias': t.take(p + 'mlp.c_fc.bias', (f,))},
                'wo': {'kernel': t.take(p + 'mlp.c_proj.weight', (f, d)),
                       'bias': t.take(p + 'mlp.c_proj.bias', (d,))}},
        'mlp_residual': {'norm': _norm(t, p + 'ln_2', d)},
    }
  decoder['final_norm'] = _norm(t, 'ln_f', d)
  params['decoder'] = decoder
  t.finish('GPT-2 checkpoint')
  return params


def gpt2_state_dict(params: Params, cfg: TransformerConfig) -> dict[str, np.ndarray]:
  """DecoderLM params (of a GPT-2-shaped config) -> GPT2LMHeadModel tensors."""
  d = cfg.d_model
  s = {'transformer.wte.weight': params['embed']['embedding'],
       'transformer.wpe.weight': params['input']['position']['pos_embedding']}
  dec = params['decoder']
  for i in range(cfg.num_decoder_layers):
    lp, p = dec[f'layer_{i}'], f'transformer.h.{i}.'
    att = lp['self_attention']
    s[p + 'attn.c_attn.weight'] = np.concatenate(
        [np.asarray(att[n]['kernel']).reshape(d, -1) for n in ('query', 'key', 'value')], 1)
    s[p + 'attn.c_attn.bias'] = np.concatenate(
        [np.asarray(att[n]['bias']).reshape(-1) for n in ('query', 'key', 'value')])
    s[p + 'attn.c_proj.weight'] = np.asarray(att['out']['kernel']).reshape(-1, d)
    s[p + 'attn.c_proj.bias'] = att['out']['bias']
    for hf_name, ours in (('c_fc', 'wi'), ('c_proj', 'wo')):
      s[p + f'mlp.{hf_name}.weight'] = lp['mlp'][ours]['kernel']
      s[p + f'mlp.{hf_name}.bias'] = lp['mlp'][ours]['bias']
    for hf_name, ours in (('ln_1', 'self_attention_residual'), ('ln_2', 'mlp_residual')):
      s[p + hf_name + '.weight'] = lp[ours]['norm']['scale']
      s[p + hf_name + '.bias'] = lp[ours]['norm']['bias']
  s['transformer.ln_f.weight'] = dec['final_norm']['scale']
  s['transformer.ln_f.bias'] = dec['final_norm']['bias']
  s['lm_head.weight'] = params['embed']['embedding']
  return {k: np.ascontiguousarray(np.asarray(v)) for k, v in s.items()}


def gpt2_hf_config(cfg: TransformerConfig, params: Params) -> dict[str, Any]:
  """GPT2LMHeadModel's config.json for a GPT-2-shaped DecoderLM config."""
  return {'model_type': 'gpt2', 'architectures': ['GPT2LMHeadModel'],
          'vocab_size': cfg.vocab_size, 'n_embd': cfg.d_model, 'n_head': cfg.num_heads,
          'n_inner': cfg.d_ff, 'n_layer': cfg.num_decoder_layers, 'n_positions': cfg.max_len,
          'layer_norm_epsilon': cfg.norm_epsilon, 'activation_function': 'gelu_new',
          'tie_word_embeddings': True}


# ---------------------------------------------------------------------------
# BERT.
# ---------------------------------------------------------------------------

_BERT_ACTIVATIONS = {'gelu': 'gelu_exact', 'gelu_new': 'gelu', 'gelu_pytorch_tanh': 'gelu',
                     'relu': 'relu'}


def bert_model_config(hf: Mapping[str, Any]) -> TransformerConfig:
  """BERT's config.json -> the EncoderOnly config (post-LN, learned positions, 2 classes:
  the next-sentence head of the pretraining checkpoints)."""
  unsupported = []
  if hf.get('hidden_act', 'gelu') not in _BERT_ACTIVATIONS:
    unsupported.append(f"hidden_act={hf['hidden_act']!r}")
  if hf.get('position_embedding_type', 'absolute') != 'absolute':
    unsupported.append(f"position_embedding_type={hf['position_embedding_type']!r}")
  if unsupported:
    raise ConversionError(f'BERT settings this library does not implement: {unsupported}')
  return TransformerConfig(
      vocab_size=hf['vocab_size'], d_model=hf['hidden_size'],
      num_heads=hf['num_attention_heads'], d_ff=hf['intermediate_size'],
      num_encoder_layers=hf['num_hidden_layers'], num_decoder_layers=0,
      max_len=hf['max_position_embeddings'], type_vocab_size=hf.get('type_vocab_size', 2),
      pad_id=hf.get('pad_token_id') or 0, norm='layernorm', norm_position='post',
      norm_epsilon=hf.get('layer_norm_eps', 1e-12),
      activation=_BERT_ACTIVATIONS[hf.get('hidden_act', 'gelu')], positional='learned',
      scale_embeddings=False, use_bias=True, num_classes=2, dropout_rate=0.0,
      attention_dropout_rate=0.0, deterministic=True)


def _linear(t: _Tensors, name: str, n_in: int, n_out: int) -> dict:
  """A torch Linear (weight [out, in]) as a Dense {kernel [in, out], bias}."""
  w = t.take(f'{name}.weight', (n_out, n_in))
  return {'kernel': None if w is None else w.T, 'bias': t.take(f'{name}.bias', (n_out,))}


def _linear_t(t: _Tensors, name: str, n_out: int, n_in: int) -> np.ndarray | None:
  """A torch Linear weight [out, in] (no bias), transposed to this library's [in, out]."""
  w = t.take(name, (n_out, n_in))
  return None if w is None else w.T


def _attention_linears(t: _Tensors, cfg: TransformerConfig, prefix: str,
                       names: tuple[str, str, str, str], bias: bool = False) -> Params:
  """Attention whose query, key, value and output projections are torch Linears without a
  bias (`names` under `prefix`: T5's q/k/v/o, Llama's q_proj/...; `bias`: the query, key and
  value have one, as Qwen2's) -> this library's kernels [d, heads, head_dim] and
  [heads, head_dim, d], grouped key/value heads included."""
  d, k = cfg.d_model, cfg.qkv_dim
  out = {}
  for ours, theirs, n in zip(('query', 'key', 'value'), names,
                             (cfg.num_heads, cfg.kv_heads, cfg.kv_heads)):
    w = _linear_t(t, f'{prefix}.{theirs}.weight', n * k, d)
    out[ours] = {'kernel': None if w is None else w.reshape(d, n, k)}
    if bias:
      b = t.take(f'{prefix}.{theirs}.bias', (n * k,))
      out[ours]['bias'] = None if b is None else b.reshape(n, k)
  w = _linear_t(t, f'{prefix}.{names[3]}.weight', d, cfg.num_heads * k)
  out['out'] = {'kernel': None if w is None else w.reshape(cfg.num_heads, k, d)}
  return out


def _bert_layer(t: _Tensors, cfg: TransformerConfig, prefix: str, attention: str,
                attention_norm: str, mlp_norm: str) -> Params:
  """One encoder layer in the BERT / ViT layout (torch Linears, heads in the columns);
  the norms' names differ: BERT's after each sub-layer, ViT's before."""
  d, h, k, f = cfg.d_model, cfg.num_heads, cfg.qkv_dim, cfg.d_ff
  att = {}
  for name in ('query', 'key', 'value'):
    lin = _linear(t, f'{prefix}{attention}.{name}', d, h * k)
    att[name] = {'kernel': None if lin['kernel'] is None else lin['kernel'].reshape(d, h, k),
                 'bias': None if lin['bias'] is None else lin['bias'].reshape(h, k)}
  out = _linear(t, prefix + 'attention.output.dense', h * k, d)
  att['out'] = {'kernel': None if out['kernel'] is None else out['kernel'].reshape(h, k, d),
                'bias': out['bias']}
  return {'self_attention': att,
          'self_attention_residual': {'norm': _norm(t, prefix + attention_norm, d)},
          'mlp': {'wi': _linear(t, prefix + 'intermediate.dense', d, f),
                  'wo': _linear(t, prefix + 'output.dense', f, d)},
          'mlp_residual': {'norm': _norm(t, prefix + mlp_norm, d)}}


def bert_params(state: Mapping[str, np.ndarray], cfg: TransformerConfig) -> Params:
  """BertForPreTraining tensors (the layout of bert-base-uncased) -> EncoderOnly params.

  LayerNorm tensors named `gamma` / `beta` (checkpoints converted from TensorFlow, such
  as bert-base-uncased's) are read as `weight` / `bias`, as Hugging Face does.
  """
  renames = {'.LayerNorm.gamma': '.LayerNorm.weight', '.LayerNorm.beta': '.LayerNorm.bias'}
  state = {next((k[:-len(old)] + new for old, new in renames.items() if k.endswith(old)), k): v
           for k, v in state.items()}
  t = _Tensors(state, ignore=('embeddings.position_ids', 'embeddings.token_type_ids'))
  d, v = cfg.d_model, cfg.vocab_size
  e = 'bert.embeddings.'
  word = t.take(e + 'word_embeddings.weight', (v, d))
  params: Params = {
      'embed': {'embedding': word},
      'position': {'pos_embedding': t.take(e + 'position_embeddings.weight', (cfg.max_len, d))},
      'type_embed': {'embedding': t.take(e + 'token_type_embeddings.weight',
                                         (cfg.type_vocab_size, d))},
      'embed_norm': _norm(t, e + 'LayerNorm', d),
  }
  encoder = {f'layer_{i}': _bert_layer(t, cfg, f'bert.encoder.layer.{i}.', 'attention.self',
                                       'attention.output.LayerNorm', 'output.LayerNorm')
             for i in range(cfg.num_encoder_layers)}
  params['encoder'] = encoder
  c = 'cls.predictions.'
  params['mlm_dense'] = _linear(t, c + 'transform.dense', d, d)
  params['mlm_norm'] = _norm(t, c + 'transform.LayerNorm', d)
  params['mlm_bias'] = t.take(c + 'bias', (v,))
  for name in ('decoder.weight', 'decoder.bias'):   # tied copies, when saved
    if c + name in t.state:
      copy = t.take(c + name, (v, d) if name.endswith('weight') else (v,))
      orig = word if name.endswith('weight') else params['mlm_bias']
      if copy is not None and orig is not None and not np.array_equal(copy, orig):
        t.problems.append(f'{c + name} differs from the tensor it is tied to')
  heads = ('bert.pooler.dense.weight', 'cls.seq_relationship.weight')
  if not any(name in t.state for name in heads):
    # BertForMaskedLM (most published BERTs) has neither head: start them as BERT's own
    # init does (normal, std 0.02; zero bias), seeded, and say so.
    rng = np.random.default_rng(0)
    init = lambda n_in, n_out: {   # noqa: E731
        'kernel': (0.02 * rng.standard_normal((n_in, n_out))).astype(np.float32),
        'bias': np.zeros((n_out,), np.float32)}
    params['pooler'], params['classifier'] = init(d, d), init(d, cfg.num_classes)
    log.warning('This BERT checkpoint has no pooler and no next-sentence head (a '
                'BertForMaskedLM): both start at random (normal, std 0.02); fine-tune them '
                'before using the [CLS] classifier. The masked-LM head is the checkpoint\'s.')
  else:
    params['pooler'] = _linear(t, 'bert.pooler.dense', d, d)
    params['classifier'] = _linear(t, 'cls.seq_relationship', d, cfg.num_classes)
  t.finish('BERT checkpoint')
  return params


def bert_state_dict(params: Params, cfg: TransformerConfig) -> dict[str, np.ndarray]:
  """EncoderOnly params (of a BERT-shaped config) -> BertForPreTraining tensors."""
  d = cfg.d_model
  w = _Writer()
  e = 'bert.embeddings.'
  w.s[e + 'word_embeddings.weight'] = params['embed']['embedding']
  w.s[e + 'position_embeddings.weight'] = params['position']['pos_embedding']
  w.s[e + 'token_type_embeddings.weight'] = (  # none: one segment, its embedding zero
      params['type_embed']['embedding'] if 'type_embed' in params
      else np.zeros((1, d), np.asarray(params['embed']['embedding']).dtype))
  w.norm(e + 'LayerNorm', params['embed_norm'])
  for i in range(cfg.num_encoder_layers):
    w.bert_layer(params['encoder'][f'layer_{i}'], cfg, f'bert.encoder.layer.{i}.',
                 'attention.self', 'attention.output.LayerNorm', 'output.LayerNorm')
  w.linear('cls.predictions.transform.dense', params['mlm_dense'], d)
  w.norm('cls.predictions.transform.LayerNorm', params['mlm_norm'])
  w.s['cls.predictions.bias'] = params['mlm_bias']
  if bert_hf_config(cfg, params)['architectures'] == ['BertForPreTraining']:
    w.linear('bert.pooler.dense', params['pooler'], d)
    w.linear('cls.seq_relationship', params['classifier'], d)
  return w.tensors()


def bert_hf_config(cfg: TransformerConfig, params: Params) -> dict[str, Any]:
  """BERT's config.json for a BERT-shaped EncoderOnly config: BertForPreTraining when the
  params have the pooler and 2-class head, else BertForMaskedLM."""
  acts = {ours: theirs for theirs, ours in _BERT_ACTIVATIONS.items()
          if theirs in ('gelu', 'gelu_new', 'relu')}
  full = 'pooler' in params and 'classifier' in params and cfg.num_classes == 2
  return {'model_type': 'bert',
          'architectures': ['BertForPreTraining' if full else 'BertForMaskedLM'],
          'vocab_size': cfg.vocab_size, 'hidden_size': cfg.d_model,
          'num_attention_heads': cfg.num_heads, 'intermediate_size': cfg.d_ff,
          'num_hidden_layers': cfg.num_encoder_layers, 'max_position_embeddings': cfg.max_len,
          'type_vocab_size': max(cfg.type_vocab_size, 1), 'pad_token_id': cfg.pad_id,
          'layer_norm_eps': cfg.norm_epsilon, 'hidden_act': acts.get(cfg.activation, cfg.activation),
          'position_embedding_type': 'absolute', 'tie_word_embeddings': True}


# ---------------------------------------------------------------------------
# T5.
# ---------------------------------------------------------------------------

_T5_FFN = {'relu': ('relu', False), 'gated-gelu': ('gelu', True), 'gated-relu': ('relu', True),
           'gated-silu': ('silu', True)}


def t5_model_config(hf: Mapping[str, Any]) -> TransformerConfig:
  """T5's config.json -> the EncoderDecoder config: pre-norm RMSNorm, no biases, no position
  embeddings but a relative position bias per stack, unscaled attention logits, no embedding
  scaling; v1.0 (relu, tied output with the d_model^-0.5 rescale) or v1.1 (gated-gelu,
  untied output)."""
  ffn = hf.get('feed_forward_proj', 'relu')
  if ffn not in _T5_FFN:
    raise ConversionError(f'T5 settings this library does not implement: '
                          f'feed_forward_proj={ffn!r}')
  activation, gated = _T5_FFN[ffn]
  tied = hf.get('tie_word_embeddings', True)
  # Saved by transformers >= 5: always tied, the rescale a field of its own; before, an untied
  # output layer (v1.1) meant no rescale.
  rescale = hf.get('scale_decoder_outputs', tied)
  return TransformerConfig(
      vocab_size=hf['vocab_size'], d_model=hf['d_model'], num_heads=hf['num_heads'],
      head_dim=hf['d_kv'], d_ff=hf['d_ff'], num_encoder_layers=hf['num_layers'],
      num_decoder_layers=hf.get('num_decoder_layers') or hf['num_layers'],
      pad_id=hf.get('pad_token_id') or 0, norm='rmsnorm', norm_position='pre',
      norm_epsilon=hf.get('layer_norm_epsilon', 1e-6), activation=activation, gated_ffn=gated,
      use_bias=False, positional='none', position_bias='relative',
      relative_buckets=hf.get('relative_attention_num_buckets', 32),
      relative_max_distance=hf.get('relative_attention_max_distance', 128),
      scale_attention=False, scale_embeddings=False, share_embeddings=True,
      logits_via_embedding=tied, rescale_tied_logits=tied and rescale, dropout_rate=0.0,
      attention_dropout_rate=0.0, deterministic=True)


def t5_params(state: Mapping[str, np.ndarray], cfg: TransformerConfig) -> Params:
  """T5ForConditionalGeneration tensors -> EncoderDecoder params."""
  t = _Tensors(state, ignore=('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'))
  d, h, f, v = cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.vocab_size
  shared = t.take('shared.weight', (v, d))
  for copy in ('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'):
    if copy in t.state and shared is not None and not np.array_equal(t.state[copy], shared):
      t.problems.append(f'{copy} differs from shared.weight: untied input embeddings')

  def attention(prefix):
    return _attention_linears(t, cfg, prefix, ('q', 'k', 'v', 'o'))

  def ffn(prefix):
    def dense(name, n_in, n_out):
      return {'kernel': _linear_t(t, f'{prefix}.{name}.weight', n_out, n_in)}
    if cfg.gated_ffn:   # T5 v1.1: wi_0 goes through the activation (our gate), wi_1 is linear
      return {'wi_gate': dense('wi_0', d, f), 'wi': dense('wi_1', d, f), 'wo': dense('wo', f, d)}
    return {'wi': dense('wi', d, f), 'wo': dense('wo', f, d)}

  def norm(name):
    return {'norm': {'scale': t.take(f'{name}.weight', (d,))}}

  def stack(side, n_layers, cross):
    out = {'relative_bias': {'rel_embedding': t.take(
        f'{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
        (cfg.relative_buckets, h))}}
    for i in range(n_layers):
      b = f'{side}.block.{i}.layer.'
      layer = {'self_attention': attention(b + '0.SelfAttention'),
               'self_attention_residual': norm(b + '0.layer_norm')}
      j = 1
      if cross:
        layer['cross_attention'] = attention(b + '1.EncDecAttention')
        layer['cross_attention_residual'] = norm(b + '1.layer_norm')
        j = 2
      layer['mlp'] = ffn(f'{b}{j}.DenseReluDense')
      layer['mlp_residual'] = norm(f'{b}{j}.layer_norm')
      out[f'layer_{i}'] = layer
    out['final_norm'] = {'scale': t.take(f'{side}.final_layer_norm.weight', (d,))}
    return out

  params: Params = {'source_embed': {'embedding': shared},
                    'encoder': stack('encoder', cfg.num_encoder_layers, False),
                    'decoder': stack('decoder', cfg.num_decoder_layers, True)}
  if cfg.logits_via_embedding:
    if 'lm_head.weight' in t.state:
      head = t.take('lm_head.weight', (v, d))
      if head is not None and shared is not None and not np.array_equal(head, shared):
        t.problems.append('lm_head.weight differs from shared.weight, but the config says '
                          'tie_word_embeddings=true')
  else:
    w = t.take('lm_head.weight', (v, d))
    params['logits'] = {'kernel': None if w is None else w.T}
  t.finish('T5 checkpoint')
  return params


def t5_state_dict(params: Params, cfg: TransformerConfig) -> dict[str, np.ndarray]:
  """EncoderDecoder params (of a T5-shaped config) -> T5ForConditionalGeneration tensors
  (the output layer only when untied; the relative bias in block 0 of each stack)."""
  d = cfg.d_model
  s = {'shared.weight': params['source_embed']['embedding']}

  def attention(prefix, p):
    for ours, theirs in (('query', 'q'), ('key', 'k'), ('value', 'v')):
      s[f'{prefix}.{theirs}.weight'] = np.asarray(p[ours]['kernel']).reshape(d, -1).T
    s[f'{prefix}.o.weight'] = np.asarray(p['out']['kernel']).reshape(-1, d).T

  def ffn(prefix, p):
    names = ((('wi_gate', 'wi_0'), ('wi', 'wi_1')) if cfg.gated_ffn else (('wi', 'wi'),)) + (
        ('wo', 'wo'),)
    for ours, theirs in names:
      s[f'{prefix}.{theirs}.weight'] = np.asarray(p[ours]['kernel']).T

  for side, n_layers, cross in (('encoder', cfg.num_encoder_layers, False),
                                ('decoder', cfg.num_decoder_layers, True)):
    stack = params[side]
    s[f'{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight'] = (
        stack['relative_bias']['rel_embedding'])
    for i in range(n_layers):
      lp, b = stack[f'layer_{i}'], f'{side}.block.{i}.layer.'
      attention(b + '0.SelfAttention', lp['self_attention'])
      s[b + '0.layer_norm.weight'] = lp['self_attention_residual']['norm']['scale']
      j = 1
      if cross:
        attention(b + '1.EncDecAttention', lp['cross_attention'])
        s[b + '1.layer_norm.weight'] = lp['cross_attention_residual']['norm']['scale']
        j = 2
      ffn(f'{b}{j}.DenseReluDense', lp['mlp'])
      s[f'{b}{j}.layer_norm.weight'] = lp['mlp_residual']['norm']['scale']
    s[f'{side}.final_layer_norm.weight'] = stack['final_norm']['scale']
  if not cfg.logits_via_embedding:
    s['lm_head.weight'] = np.asarray(params['logits']['kernel']).T
  return {k: np.ascontiguousarray(np.asarray(v)) for k, v in s.items()}


def t5_hf_config(cfg: TransformerConfig, params: Params) -> dict[str, Any]:
  """T5ForConditionalGeneration's config.json for a T5-shaped EncoderDecoder config."""
  ffn = {v: k for k, v in _T5_FFN.items()}.get((cfg.activation, cfg.gated_ffn))
  if ffn is None:
    raise ConversionError(f'activation={cfg.activation!r} with gated_ffn={cfg.gated_ffn}: no '
                          'T5 feed_forward_proj expresses it')
  return {'model_type': 't5', 'architectures': ['T5ForConditionalGeneration'],
          'vocab_size': cfg.vocab_size, 'd_model': cfg.d_model, 'd_kv': cfg.qkv_dim,
          'd_ff': cfg.d_ff, 'num_layers': cfg.num_encoder_layers,
          'num_decoder_layers': cfg.num_decoder_layers, 'num_heads': cfg.num_heads,
          'relative_attention_num_buckets': cfg.relative_buckets,
          'relative_attention_max_distance': cfg.relative_max_distance,
          'feed_forward_proj': ffn, 'layer_norm_epsilon': cfg.norm_epsilon,
          'tie_word_embeddings': bool(cfg.logits_via_embedding),
          'scale_decoder_outputs': bool(cfg.rescale_tied_logits),
          'is_encoder_decoder': True, 'pad_token_id': cfg.pad_id, 'eos_token_id': 1,
          'decoder_start_token_id': cfg.pad_id}


# ---------------------------------------------------------------------------
# ViT.
# ---------------------------------------------------------------------------

def vit_model_config(hf: Mapping[str, Any]) -> TransformerConfig:
  """ViT's config.json -> the ViT config (pre-LN, learned positions, class token)."""
  act = hf.get('hidden_act', 'gelu')
  if act not in _BERT_ACTIVATIONS:
    raise ConversionError(f'ViT settings this library does not implement: hidden_act={act!r}')
  labels = hf.get('id2label') or {}
  return TransformerConfig(
      d_model=hf['hidden_size'], num_heads=hf['num_attention_heads'],
      d_ff=hf['intermediate_size'], num_encoder_layers=hf['num_hidden_layers'],
      num_decoder_layers=0, image_size=hf['image_size'], patch_size=hf['patch_size'],
      num_channels=hf.get('num_channels', 3), num_classes=len(labels) or 2, pool='cls',
      norm='layernorm', norm_position='pre', norm_epsilon=hf.get('layer_norm_eps', 1e-12),
      activation=_BERT_ACTIVATIONS[act], positional='learned', scale_embeddings=False,
      use_bias=hf.get('qkv_bias', True), dropout_rate=0.0, attention_dropout_rate=0.0,
      deterministic=True)


def vit_params(state: Mapping[str, np.ndarray], cfg: TransformerConfig) -> Params:
  """ViTForImageClassification tensors -> ViT params.

  The patch convolution [d, c, p, p] becomes the Dense over flattened (row, column,
  channel) patches. Hugging Face gives the class token a position embedding too
  (row 0); this library embeds positions of the patches only, so row 0 is added
  into the class token (the same sum reaches the encoder).
  """
  t = _Tensors(state)
  d = cfg.d_model
  p, c = cfg.patch_size, cfg.num_channels
  n = (cfg.image_size // p) ** 2
  e = 'vit.embeddings.'
  conv = t.take(e + 'patch_embeddings.projection.weight', (d, c, p, p))
  cls = t.take(e + 'cls_token', (1, 1, d))
  pos = t.take(e + 'position_embeddings', (1, n + 1, d))
  params: Params = {
      'patch_embed': {'kernel': None if conv is None else conv.transpose(2, 3, 1, 0)
                      .reshape(p * p * c, d),
                      'bias': t.take(e + 'patch_embeddings.projection.bias', (d,))},
      'cls_token': None if cls is None or pos is None else cls + pos[:, :1],
      'pos_embedding': None if pos is None else pos[:, 1:],
  }
  encoder = {f'layer_{i}': _bert_layer(t, cfg, f'vit.encoder.layer.{i}.',
                                       'attention.attention', 'layernorm_before',
                                       'layernorm_after')
             for i in range(cfg.num_encoder_layers)}
  encoder['final_norm'] = _norm(t, 'vit.layernorm', d)
  params['encoder'] = encoder
  params['head'] = _linear(t, 'classifier', d, cfg.num_classes)
  t.finish('ViT checkpoint')
  return params


def vit_state_dict(params: Params, cfg: TransformerConfig) -> dict[str, np.ndarray]:
  """ViT params -> ViTForImageClassification tensors. The class token keeps its position
  (this library folds it into `cls_token`): exported as the class token with a zero
  position row, which gives the same sums, so the same logits."""
  d, p, c = cfg.d_model, cfg.patch_size, cfg.num_channels
  e = 'vit.embeddings.'
  kernel = np.asarray(params['patch_embed']['kernel'])
  pos = np.asarray(params['pos_embedding']).reshape(1, -1, d)
  w = _Writer()
  w.s.update({
      e + 'patch_embeddings.projection.weight': kernel.reshape(p, p, c, d).transpose(3, 2, 0, 1),
      e + 'patch_embeddings.projection.bias': params['patch_embed']['bias'],
      e + 'cls_token': np.asarray(params['cls_token']).reshape(1, 1, d),
      e + 'position_embeddings': np.concatenate([np.zeros((1, 1, d), pos.dtype), pos], 1)})
  enc = params['encoder']
  for i in range(cfg.num_encoder_layers):
    w.bert_layer(enc[f'layer_{i}'], cfg, f'vit.encoder.layer.{i}.', 'attention.attention',
                 'layernorm_before', 'layernorm_after')
  w.norm('vit.layernorm', enc['final_norm'])
  w.linear('classifier', params['head'], d)
  return w.tensors()


def vit_hf_config(cfg: TransformerConfig, params: Params) -> dict[str, Any]:
  """ViTForImageClassification's config.json for a ViT config (class token, learned
  positions, pre-LN, patch stem)."""
  act = {v: k for k, v in _BERT_ACTIVATIONS.items() if k != 'gelu_pytorch_tanh'}.get(
      cfg.activation)
  problems = [f'{f}={getattr(cfg, f)!r}' for f, ok in (
      ('pool', 'cls'), ('positional', 'learned'), ('norm', 'layernorm'),
      ('norm_position', 'pre'), ('stem', 'patch')) if getattr(cfg, f) != ok]
  if act is None:
    problems.append(f'activation={cfg.activation!r}')
  if problems:
    raise ConversionError(f'a Hugging Face ViT cannot express {problems}')
  return {'model_type': 'vit', 'architectures': ['ViTForImageClassification'],
          'hidden_size': cfg.d_model, 'num_attention_heads': cfg.num_heads,
          'intermediate_size': cfg.d_ff, 'num_hidden_layers': cfg.num_encoder_layers,
          'image_size': cfg.image_size, 'patch_size': cfg.patch_size,
          'num_channels': cfg.num_channels, 'layer_norm_eps': cfg.norm_epsilon,
          'hidden_act': act, 'qkv_bias': bool(cfg.use_bias),
          'id2label': {str(i): f'LABEL_{i}' for i in range(cfg.num_classes)},
          'label2id': {f'LABEL_{i}': i for i in range(cfg.num_classes)}}


# ---------------------------------------------------------------------------
# Llama family: Llama, Qwen2, Mistral.
# ---------------------------------------------------------------------------

def _rope_base(hf: Mapping[str, Any]) -> float:
  """The rotary base of a Llama-family config: `rope_parameters` (transformers >= 5) or
  `rope_theta` (earlier); any rope scaling is refused, naming it."""
  params = hf.get('rope_parameters') or {}
  kind = params.get('rope_type', params.get('type', 'default'))
  scaling = hf.get('rope_scaling')
  if kind != 'default' or scaling:
    what = f'rope_scaling={scaling!r}' if scaling else f'rope_parameters={params!r}'
    raise ConversionError(f'{what}: rope scaling (llama3, yarn, linear, dynamic, ...) is not '
                          'implemented here; only the default rotary embedding is')
  return float(params.get('rope_theta', hf.get('rope_theta', 10000.0)))


def llama_model_config(hf: Mapping[str, Any]) -> TransformerConfig:
  """A Llama, Qwen2 or Mistral config.json -> the DecoderLM config with the same architecture.

  Pre-norm RMSNorm decoder with a final norm, rotary positions (the half-split layout, as
  layers.apply_rope), grouped key/value heads, SwiGLU feed-forward, no biases (Qwen2: on
  the query/key/value projections), the output layer tied or not (`tie_word_embeddings`).
  Sliding-window attention (Mistral's `sliding_window`) is exact for sequences up to the
  window: max_len is capped there, so longer ones are refused, never silently attended
  over in full. Qwen2's `use_sliding_window=True`, biases on Llama's attention output or
  MLP, and other activations are refused, naming the field.
  """
  model_type = hf.get('model_type')
  problems = [f'{k}={hf[k]!r}' for k, ok in (
      ('hidden_act', ('silu',)), ('attention_bias', (False,)), ('mlp_bias', (False,)),
      ('use_sliding_window', (False,))) if k in hf and hf[k] not in ok]
  layer_types = set(hf.get('layer_types') or ()) - {'full_attention'}
  if layer_types and not (model_type == 'mistral' or hf.get('use_sliding_window')):
    problems.append(f'layer_types={sorted(layer_types)}')
  if problems:
    raise ConversionError(f'{model_type} settings this library does not implement: {problems}')
  heads = hf['num_attention_heads']
  max_len = hf.get('max_position_embeddings', 2048)
  if model_type == 'mistral' and hf.get('sliding_window'):
    max_len = min(max_len, int(hf['sliding_window']))
  d = hf['hidden_size']
  tied = bool(hf.get('tie_word_embeddings', False))
  return TransformerConfig(
      vocab_size=hf['vocab_size'], d_model=d, num_heads=heads,
      num_kv_heads=hf.get('num_key_value_heads') or heads,
      head_dim=hf.get('head_dim') or d // heads, d_ff=hf['intermediate_size'],
      num_encoder_layers=0, num_decoder_layers=hf['num_hidden_layers'], max_len=max_len,
      norm='rmsnorm', norm_position='pre', norm_epsilon=hf.get('rms_norm_eps', 1e-6),
      activation='silu', gated_ffn=True, use_bias=False,
      qkv_bias=True if model_type == 'qwen2' else None, positional='rope',
      rope_base=_rope_base(hf), scale_embeddings=False, share_embeddings=True,
      logits_via_embedding=tied, dropout_rate=0.0, attention_dropout_rate=0.0,
      deterministic=True)


def llama_params(state: Mapping[str, np.ndarray], cfg: TransformerConfig) -> Params:
  """LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM tensors -> DecoderLM params."""
  # rotary_emb.inv_freq: a buffer some older checkpoints saved, recomputed here.
  t = _Tensors(state, prefix='model.', ignore=('rotary_emb.inv_freq',))
  d, f = cfg.d_model, cfg.d_ff
  embed = t.take('embed_tokens.weight', (cfg.vocab_size, d))
  params: Params = {'embed': {'embedding': embed}}
  if cfg.logits_via_embedding:
    if 'lm_head.weight' in t.state:   # saved although tied: it must be the embedding
      head = t.take('lm_head.weight', (cfg.vocab_size, d))
      if head is not None and embed is not None and not np.array_equal(head, embed):
        t.problems.append('lm_head.weight differs from embed_tokens.weight although '
                          'tie_word_embeddings is true')
  else:
    params['logits'] = {'kernel': _linear_t(t, 'lm_head.weight', cfg.vocab_size, d)}
  decoder: Params = {}
  for i in range(cfg.num_decoder_layers):
    p = f'layers.{i}.'
    decoder[f'layer_{i}'] = {
        'self_attention': _attention_linears(t, cfg, p + 'self_attn',
                                             ('q_proj', 'k_proj', 'v_proj', 'o_proj'),
                                             bias=bool(cfg.qkv_bias)),
        'self_attention_residual': {'norm': {'scale': t.take(f'{p}input_layernorm.weight',
                                                             (d,))}},
        'mlp': {'wi': {'kernel': _linear_t(t, f'{p}mlp.up_proj.weight', f, d)},
                'wi_gate': {'kernel': _linear_t(t, f'{p}mlp.gate_proj.weight', f, d)},
                'wo': {'kernel': _linear_t(t, f'{p}mlp.down_proj.weight', d, f)}},
        'mlp_residual': {'norm': {'scale': t.take(f'{p}post_attention_layernorm.weight',
                                                  (d,))}},
    }
  decoder['final_norm'] = {'scale': t.take('norm.weight', (d,))}
  params['decoder'] = decoder
  t.finish('Llama-family checkpoint')
  return params


def llama_state_dict(params: Params, cfg: TransformerConfig) -> dict[str, np.ndarray]:
  """DecoderLM params (of a Llama-shaped config) -> LlamaForCausalLM-layout tensors (also
  Qwen2's and Mistral's); the output layer only when untied."""
  d = cfg.d_model
  s = {'model.embed_tokens.weight': params['embed']['embedding']}
  if not cfg.logits_via_embedding:
    s['lm_head.weight'] = np.asarray(params['logits']['kernel']).T
  dec = params['decoder']
  for i in range(cfg.num_decoder_layers):
    lp, p = dec[f'layer_{i}'], f'model.layers.{i}.'
    att = lp['self_attention']
    for name, hf_name in (('query', 'q_proj'), ('key', 'k_proj'), ('value', 'v_proj')):
      s[f'{p}self_attn.{hf_name}.weight'] = np.asarray(att[name]['kernel']).reshape(d, -1).T
      if cfg.qkv_bias:
        s[f'{p}self_attn.{hf_name}.bias'] = np.asarray(att[name]['bias']).reshape(-1)
    s[f'{p}self_attn.o_proj.weight'] = np.asarray(att['out']['kernel']).reshape(-1, d).T
    for hf_name, ours in (('up_proj', 'wi'), ('gate_proj', 'wi_gate'), ('down_proj', 'wo')):
      s[f'{p}mlp.{hf_name}.weight'] = np.asarray(lp['mlp'][ours]['kernel']).T
    s[f'{p}input_layernorm.weight'] = lp['self_attention_residual']['norm']['scale']
    s[f'{p}post_attention_layernorm.weight'] = lp['mlp_residual']['norm']['scale']
  s['model.norm.weight'] = dec['final_norm']['scale']
  return {k: np.ascontiguousarray(np.asarray(v)) for k, v in s.items()}


_LLAMA_CLASSES = {'llama': 'LlamaForCausalLM', 'qwen2': 'Qwen2ForCausalLM',
                  'mistral': 'MistralForCausalLM'}


def llama_hf_config(cfg: TransformerConfig, params: Params,
                    model_type: str = 'llama') -> dict[str, Any]:
  """The config.json of a Llama-shaped DecoderLM config as `model_type` (llama, qwen2 or
  mistral); `hf_config_of` checks that it reads back as the same architecture."""
  out = {'model_type': model_type, 'architectures': [_LLAMA_CLASSES[model_type]],
         'vocab_size': cfg.vocab_size, 'hidden_size': cfg.d_model,
         'intermediate_size': cfg.d_ff, 'num_hidden_layers': cfg.num_decoder_layers,
         'num_attention_heads': cfg.num_heads, 'num_key_value_heads': cfg.kv_heads,
         'head_dim': cfg.qkv_dim, 'max_position_embeddings': cfg.max_len,
         'rms_norm_eps': cfg.norm_epsilon, 'hidden_act': 'silu',
         'tie_word_embeddings': bool(cfg.logits_via_embedding),
         'rope_parameters': {'rope_type': 'default', 'rope_theta': cfg.rope_base},
         'rope_theta': cfg.rope_base}   # the key of transformers < 5
  if model_type == 'llama':
    out.update(attention_bias=False, mlp_bias=False)
  elif model_type == 'qwen2':
    out.update(use_sliding_window=False, sliding_window=None)
  else:
    out.update(sliding_window=None)
  return out


# ---------------------------------------------------------------------------
# By model type.
# ---------------------------------------------------------------------------

class Architecture(NamedTuple):
  model_config: Callable   # config.json dict -> TransformerConfig
  params: Callable         # (tensors, TransformerConfig) -> params
  state_dict: Callable | None   # (params, TransformerConfig) -> tensors; None: import only
  hf_config: Callable | None    # (TransformerConfig, params) -> config.json dict
  model: str               # the class in transformer.models


ARCHITECTURES: dict[str, Architecture] = {
    'gpt2': Architecture(gpt2_model_config, gpt2_params, gpt2_state_dict, gpt2_hf_config,
                         'DecoderLM'),
    'bert': Architecture(bert_model_config, bert_params, bert_state_dict, bert_hf_config,
                         'EncoderOnly'),
    't5': Architecture(t5_model_config, t5_params, t5_state_dict, t5_hf_config,
                       'EncoderDecoder'),
    'vit': Architecture(vit_model_config, vit_params, vit_state_dict, vit_hf_config, 'ViT'),
    **{name: Architecture(llama_model_config, llama_params, llama_state_dict,
                          functools.partial(llama_hf_config, model_type=name), 'DecoderLM')
       for name in _LLAMA_CLASSES},
}
# The classes of this library that export, and the layouts they export as.
EXPORTS = {'DecoderLM': ('gpt2', 'llama', 'qwen2'), 'EncoderOnly': ('bert',),
           'EncoderDecoder': ('t5',), 'ViT': ('vit',)}


def export_model_type(kind: str, cfg: TransformerConfig) -> str:
  """The Hugging Face layout a model of class `kind` exports as: a rotary DecoderLM as Llama
  (Qwen2 when only its query/key/value projections have biases), another as GPT-2; an
  EncoderOnly as BERT, an EncoderDecoder as T5, a ViT as ViT. `hf_config_of` then refuses
  what the layout cannot express."""
  if kind not in EXPORTS:
    raise ConversionError(f'a {kind} model cannot be exported (export supports '
                          f'{sorted(EXPORTS)}: GPT-2, Llama, Qwen2, BERT, T5 and ViT layouts)')
  if kind == 'DecoderLM' and cfg.positional == 'rope':
    return 'qwen2' if cfg.qkv_bias and not cfg.use_bias else 'llama'
  return EXPORTS[kind][0]

# The fields that decide the architecture (and so the tensor layout); the rest
# (dropout, dtypes, ...) do not travel with a checkpoint.
_ARCHITECTURE_FIELDS = (
    'd_model', 'num_heads', 'num_kv_heads', 'head_dim', 'd_ff', 'num_encoder_layers',
    'num_decoder_layers', 'max_len', 'norm', 'norm_position', 'norm_epsilon', 'activation',
    'gated_ffn', 'use_bias', 'qkv_bias', 'positional', 'rope_base', 'position_bias',
    'scale_embeddings', 'scale_attention', 'logits_via_embedding', 'share_embeddings',
    'rescale_tied_logits', 'vocab_size', 'relative_buckets', 'relative_max_distance',
    'image_size', 'patch_size', 'num_channels', 'pool', 'stem')


def _effective(cfg: TransformerConfig, field: str):
  """A field's value as the model uses it (head_dim None is d_model // num_heads, ...)."""
  if field == 'head_dim':
    return cfg.qkv_dim
  if field == 'num_kv_heads':
    return cfg.kv_heads
  if field == 'qkv_bias':
    return cfg.use_bias if cfg.qkv_bias is None else cfg.qkv_bias
  return getattr(cfg, field)


def _architecture(model_type: str | None) -> Architecture:
  if model_type not in ARCHITECTURES:
    raise ConversionError(f'model_type {model_type!r} is not supported; supported: '
                          f'{sorted(ARCHITECTURES)}')
  return ARCHITECTURES[model_type]


def from_hf(hf_config: Mapping[str, Any],
            state: Mapping[str, np.ndarray]) -> tuple[TransformerConfig, Params]:
  """(TransformerConfig, params) of a Hugging Face config.json dict and its tensors."""
  arch = _architecture(hf_config.get('model_type'))
  cfg = arch.model_config(hf_config)
  return cfg, arch.params(state, cfg)


def to_hf(model_type: str, cfg: TransformerConfig, params: Params) -> dict[str, np.ndarray]:
  """Tensors in the Hugging Face layout of `model_type` from this library's params."""
  arch = _architecture(model_type)
  if arch.state_dict is None:
    raise ConversionError(f'exporting {model_type!r} to Hugging Face is not implemented')
  return arch.state_dict(params, cfg)


def hf_config_of(model_type: str, cfg: TransformerConfig, params: Params) -> dict[str, Any]:
  """The Hugging Face config.json of `cfg` as a `model_type` model.

  Refuses (ConversionError naming the fields) a model whose architecture the
  Hugging Face one cannot express, e.g. a GPT-2 export of a post-LN model with
  sinusoidal positions: the config read back must give `cfg`'s architecture.
  """
  arch = _architecture(model_type)
  if arch.hf_config is None:
    raise ConversionError(f'exporting {model_type!r} to Hugging Face is not implemented')
  hf_config = arch.hf_config(cfg, params)
  try:
    back = arch.model_config(hf_config)
  except ConversionError as e:
    raise ConversionError(f'this model cannot be exported as {model_type!r}: {e}') from None
  differ = [f'{f}={getattr(cfg, f)!r} (a {model_type} model has {getattr(back, f)!r})'
            for f in _ARCHITECTURE_FIELDS if _effective(cfg, f) != _effective(back, f)]
  if differ:
    raise ConversionError(f'this model cannot be exported as {model_type!r}: '
                          + '; '.join(differ))
  return hf_config
