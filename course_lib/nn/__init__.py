"""Lessons 01-03, 05-06, 11: blocks, one module per idea: attention (lessons 01-03, 05, 11), positions (03), the
Transformer's layers (03), greedy decoding (01), the key-value cache (06).
Blocks import only torch, einops and each other."""

from course_lib.nn.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    record_attention,
    scaled_dot_product_attention,
    split_heads,
)
from course_lib.nn.greedy import greedy_decode
from course_lib.nn.kv_cache import KVCache, LayerCache
from course_lib.nn.positional import SinusoidalPositions, sinusoidal_encoding
from course_lib.nn.transformer_layers import DecoderLayer, EncoderLayer, FeedForward

__all__ = [
    "AdditiveAttention",
    "DecoderLayer",
    "EncoderLayer",
    "FeedForward",
    "KVCache",
    "LayerCache",
    "MultiHeadAttention",
    "SinusoidalPositions",
    "causal_mask",
    "greedy_decode",
    "merge_heads",
    "padding_mask",
    "record_attention",
    "scaled_dot_product_attention",
    "sinusoidal_encoding",
    "split_heads",
]
