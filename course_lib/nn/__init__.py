"""Neural-network blocks, one module per idea: attention, positions, Transformer layers."""
from course_lib.nn.attention import (MultiHeadAttention, causal_mask, merge_heads, padding_mask, record_attention,
                                     scaled_dot_product_attention, split_heads)
from course_lib.nn.seq2seq import AdditiveAttention, Seq2SeqGRU
from course_lib.nn.positional import SinusoidalPositions, sinusoidal_encoding
from course_lib.nn.transformer import DecoderLayer, EncoderLayer, FeedForward, Seq2SeqTransformer

__all__ = ["AdditiveAttention", "Seq2SeqGRU", "MultiHeadAttention", "causal_mask", "merge_heads", "padding_mask", "record_attention", "scaled_dot_product_attention",
           "split_heads", "SinusoidalPositions", "sinusoidal_encoding", "DecoderLayer", "EncoderLayer",
           "FeedForward", "Seq2SeqTransformer"]
