"""Hugging Face checkpoints: this library's models give Hugging Face's outputs.

The fixtures under tests/fixtures/hf/ (tiny random models saved by Hugging Face,
with their outputs) were written by tests/fixtures/hf/make_fixtures.py with the
torch and transformers of versions.json; CI needs neither.
"""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import helpers
from transformer import decoding, hf
from transformer.models import DecoderLM, EncoderDecoder, EncoderOnly, ViT

FIXTURES = os.path.join(helpers.REPO, 'tests', 'fixtures', 'hf')


def fixture(name):
  hf_config, state = hf.read_checkpoint(os.path.join(FIXTURES, name))
  return hf_config, state, dict(np.load(os.path.join(FIXTURES, name, 'outputs.npz')))


@pytest.fixture(scope='module')
def gpt2():
  return fixture('gpt2')


def test_fixtures_record_the_versions_that_made_them():
  with open(os.path.join(FIXTURES, 'versions.json')) as f:
    versions = json.load(f)
  folders = sorted(n for n in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, n)))
  texts = sorted(f'text:{n}' for n in folders
                 if os.path.isfile(os.path.join(FIXTURES, n, 'text.json')))
  assert sorted(versions) == sorted(folders + texts)
  assert all(set(v) == {'torch', 'transformers'} for v in versions.values())
  total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(FIXTURES)
              for f in files)
  assert total < 1_000_000, total


def test_gpt2_logits_and_attention_weights_match_hugging_face(gpt2):
  hf_config, state, out = gpt2
  cfg, params = hf.from_hf(hf_config, state)
  tokens, real = out['input_ids'], out['attention_mask'].astype(bool)
  left_pad = jnp.asarray((~real).sum(1), jnp.int32)          # row 0 is left-padded
  logits, inter = DecoderLM(cfg).apply({'params': params}, jnp.asarray(tokens), left_pad,
                                       mutable=['intermediates'])
  np.testing.assert_allclose(np.asarray(logits)[real], out['logits'][real], rtol=1e-5,
                             atol=1e-5)
  for i in range(cfg.num_decoder_layers):
    ours = np.asarray(inter['intermediates']['decoder'][f'layer_{i}']['self_attention']
                      ['attention_weights'][0])              # [batch, heads, q, k]
    theirs = out[f'attention_{i}']
    for b in range(tokens.shape[0]):
      np.testing.assert_allclose(ours[b][:, real[b]], theirs[b][:, real[b]], rtol=1e-5,
                                 atol=1e-6)


def test_gpt2_cached_decoding_matches_hugging_face(gpt2):
  hf_config, state, out = gpt2
  cfg, params = hf.from_hf(hf_config, state)
  tokens, real = out['input_ids'], out['attention_mask'].astype(bool)
  left_pad = jnp.asarray((~real).sum(1), jnp.int32)
  dcfg = cfg.replace(use_cache=True)
  model = DecoderLM(dcfg)
  cache = model.init(jax.random.PRNGKey(0),
                     jnp.zeros((tokens.shape[0], cfg.max_len), jnp.int32))['cache']
  steps = []
  for t in range(tokens.shape[1]):
    logits, state_ = model.apply({'params': params, 'cache': cache},
                                 jnp.asarray(tokens[:, t:t + 1]), left_pad, mutable=['cache'])
    cache = state_['cache']
    steps.append(np.asarray(logits[:, 0]))
  np.testing.assert_allclose(np.stack(steps, 1)[real], out['logits'][real], rtol=1e-5,
                             atol=1e-5)


def test_gpt2_export_gives_back_the_checkpoint(gpt2):
  hf_config, state, _ = gpt2
  cfg, params = hf.from_hf(hf_config, state)
  back = hf.to_hf('gpt2', cfg, params)
  for name, x in state.items():
    if name.endswith(('.attn.bias', '.attn.masked_bias')):
      continue
    np.testing.assert_array_equal(back[name], x, err_msg=name)
  assert set(back) - set(state) <= {'lm_head.weight'}


def test_gpt2_bad_checkpoints_are_refused_with_the_tensors_named(gpt2, tmp_path):
  hf_config, state, _ = gpt2
  broken = dict(state)
  del broken['transformer.h.1.ln_2.bias']
  broken['transformer.h.0.extra.weight'] = np.zeros(3, np.float32)
  broken['transformer.wpe.weight'] = np.zeros((5, 16), np.float32)
  with pytest.raises(hf.ConversionError) as e:
    hf.from_hf(hf_config, broken)
  msg = str(e.value)
  assert 'missing tensor h.1.ln_2.bias (expected shape (16,))' in msg
  assert "unknown tensor(s) ['h.0.extra.weight']" in msg
  assert 'tensor wpe.weight has shape (5, 16), expected (16, 16)' in msg
  with pytest.raises(hf.ConversionError, match="model_type 'bart' is not supported"):
    hf.from_hf({**hf_config, 'model_type': 'bart'}, state)
  with pytest.raises(hf.ConversionError, match='activation_function'):
    hf.from_hf({**hf_config, 'activation_function': 'relu'}, state)
  with pytest.raises(hf.ConversionError, match='config.json does not exist'):
    hf.read_checkpoint(str(tmp_path))
  (tmp_path / 'config.json').write_text('{}')
  with pytest.raises(hf.ConversionError, match='No weights in'):
    hf.read_checkpoint(str(tmp_path))


@pytest.fixture(scope='module')
def bert():
  return fixture('bert')


def test_bert_heads_and_attention_weights_match_hugging_face(bert):
  hf_config, state, out = bert
  cfg, params = hf.from_hf(hf_config, state)
  assert cfg.activation == 'gelu_exact' and cfg.norm_position == 'post'
  real = out['attention_mask'].astype(bool)                 # row 0 ends with padding
  (mlm, classes), inter = EncoderOnly(cfg).apply(
      {'params': params}, jnp.asarray(out['input_ids']), jnp.asarray(out['token_type_ids']),
      jnp.asarray(out['attention_mask']), head='both', mutable=['intermediates'])
  np.testing.assert_allclose(np.asarray(mlm)[real], out['mlm_logits'][real], rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(classes), out['class_logits'], rtol=1e-5, atol=1e-5)
  for i in range(cfg.num_encoder_layers):
    ours = np.asarray(inter['intermediates']['encoder'][f'layer_{i}']['self_attention']
                      ['attention_weights'][0])
    np.testing.assert_allclose(ours, out[f'attention_{i}'], rtol=1e-5, atol=1e-6)
  # Token types matter: the same tokens as one segment give other logits.
  same_segment = EncoderOnly(cfg).apply({'params': params}, jnp.asarray(out['input_ids']),
                                        None, jnp.asarray(out['attention_mask']))
  assert np.abs(np.asarray(same_segment)[real] - out['mlm_logits'][real]).max() > 1e-2


def test_bert_export_gives_back_the_checkpoint(bert):
  hf_config, state, _ = bert
  cfg, params = hf.from_hf(hf_config, state)
  back = hf.to_hf('bert', cfg, params)
  for name, x in state.items():
    if name.startswith('cls.predictions.decoder') or name.endswith('_ids'):
      continue
    np.testing.assert_array_equal(back[name], x, err_msg=name)
  with pytest.raises(hf.ConversionError, match='hidden_act'):
    hf.from_hf({**hf_config, 'hidden_act': 'swish'}, state)
  # TensorFlow-converted names (bert-base-uncased's LayerNorm gamma / beta) read the same.
  tf_names = {k.replace('LayerNorm.weight', 'LayerNorm.gamma').replace('LayerNorm.bias',
                                                                         'LayerNorm.beta'): v
              for k, v in state.items()}
  assert any(k.endswith('gamma') for k in tf_names)
  _, tf_params = hf.from_hf(hf_config, tf_names)
  np.testing.assert_array_equal(tf_params['embed_norm']['scale'], params['embed_norm']['scale'])


@pytest.mark.slow
@pytest.mark.parametrize('name', ['t5', 't5_v1_1'])
def test_t5_logits_attention_and_cached_decoding_match_hugging_face(name):
  """v1.0 (ReLU, tied output rescaled) and v1.1 (gated GELU, untied); relative position
  bias in both stacks, head_dim 6 x 2 heads != d_model 16, a padded source row."""
  hf_config, state, out = fixture(name)
  cfg, params = hf.from_hf(hf_config, state)
  src, tgt = jnp.asarray(out['input_ids']), jnp.asarray(out['decoder_input_ids'])
  logits, inter = EncoderDecoder(cfg).apply({'params': params}, src, tgt,
                                            mutable=['intermediates'])
  np.testing.assert_allclose(np.asarray(logits), out['logits'], rtol=1e-5, atol=1e-5)
  real = out['attention_mask'].astype(bool)
  for i in range(cfg.num_encoder_layers):
    ours = np.asarray(inter['intermediates']['encoder'][f'layer_{i}']['self_attention']
                      ['attention_weights'][0])
    theirs = out[f'encoder_attentions_{i}']
    for b in range(2):      # padded queries: Hugging Face still attends from them; we don't care
      np.testing.assert_allclose(ours[b][:, real[b]], theirs[b][:, real[b]], rtol=1e-5,
                                 atol=1e-6)
  for i in range(cfg.num_decoder_layers):
    layer = inter['intermediates']['decoder'][f'layer_{i}']
    np.testing.assert_allclose(np.asarray(layer['self_attention']['attention_weights'][0]),
                               out[f'decoder_attentions_{i}'], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer['cross_attention']['attention_weights'][0]),
                               out[f'cross_attentions_{i}'], rtol=1e-5, atol=1e-6)

  # Cached decoding, one target token per step (the relative bias of the cached position).
  dcfg = cfg.replace(use_cache=True, max_len=tgt.shape[1])
  model = EncoderDecoder(dcfg)
  cache = model.init(jax.random.PRNGKey(0), src, jnp.zeros_like(tgt))['cache']
  encoded = model.apply({'params': params}, src, method='encode')
  steps = []
  for t in range(tgt.shape[1]):
    step_logits, state_ = model.apply({'params': params, 'cache': cache}, encoded, src,
                                      tgt[:, t:t + 1], method='decode', mutable=['cache'])
    cache = state_['cache']
    steps.append(np.asarray(step_logits[:, 0]))
  np.testing.assert_allclose(np.stack(steps, 1), out['logits'], rtol=1e-5, atol=1e-5)

  if name == 't5_v1_1':   # as saved before transformers 5: an untied lm_head, no rescale flag
    old_config = {k: v for k, v in hf_config.items() if k != 'scale_decoder_outputs'}
    old_config['tie_word_embeddings'] = False
    old_cfg, old_params = hf.from_hf(old_config,
                                     {**state, 'lm_head.weight': state['shared.weight']})
    assert not old_cfg.logits_via_embedding and 'logits' in old_params
    np.testing.assert_allclose(
        np.asarray(EncoderDecoder(old_cfg).apply({'params': old_params}, src, tgt)),
        out['logits'], rtol=1e-5, atol=1e-5)


def test_vit_logits_and_attention_weights_match_hugging_face():
  hf_config, state, out = fixture('vit')
  cfg, params = hf.from_hf(hf_config, state)
  images = jnp.asarray(out['pixel_values'].transpose(0, 2, 3, 1))     # NCHW -> NHWC
  logits, inter = ViT(cfg).apply({'params': params}, images, mutable=['intermediates'])
  np.testing.assert_allclose(np.asarray(logits), out['logits'], rtol=1e-5, atol=1e-5)
  for i in range(cfg.num_encoder_layers):
    ours = inter['intermediates']['encoder'][f'layer_{i}']['self_attention'][
        'attention_weights'][0]
    np.testing.assert_allclose(np.asarray(ours), out[f'attention_{i}'], rtol=1e-5, atol=1e-6)


def test_attention_figures_of_imported_bert_and_gpt2(tmp_path):
  from tools import visualize
  for name, stack in (('bert', 'encoder'), ('gpt2', 'decoder')):
    paths = visualize.hf_attention_figures(os.path.join(FIXTURES, name), str(tmp_path / name),
                                           ids=['5', '6', '7', '8'])
    assert [os.path.basename(p) for p in paths] == [f'{stack}_layer{i}_heads.png'
                                                    for i in range(2)]
    assert all(os.path.getsize(p) > 1000 for p in paths)
  with pytest.raises(ValueError, match='has no tokenizer.json or spiece.model|tokenizers package'):
    visualize.hf_attention_figures(os.path.join(FIXTURES, 'bert'), str(tmp_path), text='a b')
  with pytest.raises(ValueError, match='--image is for ViT checkpoints'):
    visualize.hf_attention_figures(os.path.join(FIXTURES, 'bert'), str(tmp_path), ids=['1'],
                                   image='cat.png')
  # T5: a source translated greedily, then every layer of the three kinds.
  paths = visualize.hf_attention_figures(os.path.join(FIXTURES, 't5'), str(tmp_path / 't5'),
                                         ids=['5', '6', '1'])
  assert sorted(os.path.basename(p) for p in paths) == sorted(
      f'{kind}_layer{i}_heads.png' for kind in ('encoder', 'decoder', 'cross') for i in range(2))


# ----------------------------------------------------------------------------- Llama family

@pytest.mark.parametrize('name', ['llama', 'qwen2', 'mistral'])
def test_llama_family_logits_and_greedy_decoding_match_hugging_face(name):
  """Logits of a left-padded batch, and 8 greedy tokens on the key/value cache continuing
  it, equal Hugging Face's (Llama: untied output, rope theta 500; Qwen2: tied, query/key/
  value biases, read from 4 shards through the index; Mistral: head_dim 12)."""
  hf_config, state, out = fixture(name)
  cfg, params = hf.from_hf(hf_config, state)
  assert (cfg.positional, cfg.norm, cfg.gated_ffn, cfg.kv_heads) == ('rope', 'rmsnorm', True, 2)
  assert ('logits' in params) == (name != 'qwen2')
  assert cfg.qkv_bias == (True if name == 'qwen2' else None)
  assert cfg.qkv_dim == (12 if name == 'mistral' else 8)
  assert cfg.rope_base == {'llama': 500.0, 'qwen2': 1000.0, 'mistral': 10000.0}[name]
  tokens, real = out['input_ids'], out['attention_mask'].astype(bool)
  left_pad = jnp.asarray((~real).sum(1), jnp.int32)
  logits = DecoderLM(cfg).apply({'params': params}, jnp.asarray(tokens), left_pad)
  np.testing.assert_allclose(np.asarray(logits)[real], out['logits'][real], rtol=1e-5,
                             atol=1e-5)
  new = decoding.generate(params, cfg, jnp.asarray(tokens), 8, temperature=0.0,
                          left_pad=left_pad)
  np.testing.assert_array_equal(np.asarray(new), out['greedy'])


def test_llama_family_settings_it_cannot_express_are_refused_by_name(tmp_path):
  hf_config, state, _ = fixture('llama')
  for field, value, named in (
      ('rope_scaling', {'rope_type': 'llama3', 'factor': 8.0}, 'rope_scaling='),
      ('rope_parameters', {'rope_type': 'yarn', 'rope_theta': 1e4}, "'rope_type': 'yarn'"),
      ('attention_bias', True, 'attention_bias=True'),
      ('hidden_act', 'gelu', "hidden_act='gelu'"),
      ('use_sliding_window', True, 'use_sliding_window=True')):
    with pytest.raises(hf.ConversionError, match=re.escape(named)):
      hf.from_hf(dict(hf_config, **{field: value}), state)
  # Mistral's window: exact up to it, so max_len stops there (longer input is refused).
  mistral, mstate, _ = fixture('mistral')
  cfg, params = hf.from_hf(dict(mistral, sliding_window=8), mstate)
  assert cfg.max_len == 8
  with pytest.raises(ValueError, match='exceeds model max_len=8'):
    DecoderLM(cfg).apply({'params': params}, jnp.ones((1, 9), jnp.int32))
  # A sharded checkpoint with a shard missing: named, before anything is read.
  import shutil
  copy = tmp_path / 'qwen2'
  shutil.copytree(os.path.join(FIXTURES, 'qwen2'), copy)
  os.remove(copy / 'model-00003-of-00004.safetensors')
  with pytest.raises(hf.ConversionError, match=r"1 shard\(s\) that are not in .*"
                                               r"model-00003-of-00004.safetensors"):
    hf.read_checkpoint(str(copy))


@pytest.mark.parametrize('name', ['llama', 'qwen2', 'mistral'])
def test_llama_family_export_gives_back_the_checkpoint(name):
  hf_config, state, _ = fixture(name)
  cfg, params = hf.from_hf(hf_config, state)
  back = hf.to_hf(name, cfg, params)
  assert sorted(back) == sorted(state)                        # Qwen2 (tied): no lm_head
  for key, x in state.items():
    np.testing.assert_array_equal(back[key], x, err_msg=key)
  config = hf.hf_config_of(name, cfg, params)
  for key in ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
              'num_key_value_heads', 'rms_norm_eps', 'tie_word_embeddings', 'vocab_size',
              'rope_parameters'):
    assert config[key] == hf_config[key], key
  assert config['head_dim'] == hf_config.get('head_dim', 8)   # Qwen2's config leaves it out
  assert hf.from_hf(config, back)[0] == cfg
  # A rotary DecoderLM of this library exports as Llama (Qwen2 with only qkv biases).
  assert hf.export_model_type('DecoderLM', cfg) == ('qwen2' if name == 'qwen2' else 'llama')
  with pytest.raises(hf.ConversionError, match="use_bias=True"):
    hf.hf_config_of('llama', cfg.replace(use_bias=True), params)


def test_bert_for_masked_lm_imports_with_its_missing_heads_initialised(caplog):
  """Most published BERTs are BertForMaskedLM: no pooler, no next-sentence head. Its masked-LM
  logits are Hugging Face's; the two absent heads start at random, and the import says so."""
  hf_config, state, out = fixture('bert_mlm')
  with caplog.at_level('WARNING', logger='transformer'):
    cfg, params = hf.from_hf(hf_config, state)
  assert 'no pooler and no next-sentence head' in caplog.text
  for name, shape in (('pooler', (16, 16)), ('classifier', (16, 2))):
    kernel = params[name]['kernel']
    assert kernel.shape == shape and 0.005 < kernel.std() < 0.05
    assert not params[name]['bias'].any()
  real = out['attention_mask'].astype(bool)
  mlm = EncoderOnly(cfg).apply({'params': params}, jnp.asarray(out['input_ids']),
                               attention_mask=jnp.asarray(out['attention_mask']))
  np.testing.assert_allclose(np.asarray(mlm)[real], out['mlm_logits'][real], rtol=1e-5,
                             atol=1e-5)
  # One of the two heads alone is a damaged checkpoint, not a BertForMaskedLM.
  full, full_state, _ = fixture('bert')
  broken = {k: v for k, v in full_state.items() if not k.startswith('cls.seq_relationship')}
  with pytest.raises(hf.ConversionError, match='missing tensor cls.seq_relationship.weight'):
    hf.from_hf(full, broken)


@pytest.mark.parametrize('name', ['t5', 't5_v1_1'])
def test_t5_export_gives_back_the_checkpoint(name):
  hf_config, state, out = fixture(name)
  cfg, params = hf.from_hf(hf_config, state)
  back = hf.to_hf('t5', cfg, params)
  assert sorted(back) == sorted(state)
  for key, x in state.items():
    np.testing.assert_array_equal(back[key], x, err_msg=key)
  config = hf.hf_config_of('t5', cfg, params)
  for key in ('d_model', 'd_kv', 'd_ff', 'num_layers', 'num_heads', 'feed_forward_proj',
              'relative_attention_num_buckets', 'relative_attention_max_distance',
              'tie_word_embeddings', 'scale_decoder_outputs', 'vocab_size'):
    assert config[key] == hf_config[key], key
  assert hf.from_hf(config, back)[0] == cfg
  assert hf.export_model_type('EncoderDecoder', cfg) == 't5'


def test_vit_export_gives_the_same_logits():
  """The class token's position is folded into the class token on import, so the export
  writes that sum with a zero position row: other tensors equal, the same logits."""
  hf_config, state, out = fixture('vit')
  cfg, params = hf.from_hf(hf_config, state)
  back = hf.to_hf('vit', cfg, params)
  assert sorted(back) == sorted(state)
  folded = {'vit.embeddings.cls_token', 'vit.embeddings.position_embeddings'}
  for key, x in state.items():
    if key not in folded:
      np.testing.assert_array_equal(back[key], x, err_msg=key)
  np.testing.assert_allclose(back['vit.embeddings.position_embeddings'][:, 1:],
                             state['vit.embeddings.position_embeddings'][:, 1:])
  config = hf.hf_config_of('vit', cfg, params)
  again_cfg, again = hf.from_hf(config, back)
  assert again_cfg == cfg
  images = jnp.asarray(np.transpose(out['pixel_values'], (0, 2, 3, 1)))
  np.testing.assert_allclose(ViT(again_cfg).apply({'params': again}, images), out['logits'],
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(hf.ConversionError, match="pool='gap'"):
    hf.hf_config_of('vit', cfg.replace(pool='gap'), params)
