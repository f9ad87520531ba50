"""A Transformer research library in JAX/Flax (Linen)."""

from transformer.model_config import PRESETS, TransformerConfig, from_dict, preset
from transformer.models import DecoderLM, EncoderDecoder, EncoderOnly, ViT

__all__ = ['PRESETS', 'TransformerConfig', 'from_dict', 'preset', 'DecoderLM',
           'EncoderDecoder', 'EncoderOnly', 'ViT']
