"""Lessons 01-03's blocks: course_lib.nn against PyTorch's own modules (copied weights), plus masks and the two
seq2seq models overfitting a batch (course_lib.nn, course_lib.models.transformer, course_lib.models.seq2seq)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models.transformer import Seq2SeqTransformer
from course_lib.nn import (
    DecoderLayer,
    EncoderLayer,
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_encoding,
    split_heads,
)


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    m = padding_mask(torch.tensor([2, 4]), 4)
    assert m.shape == (2, 1, 1, 4) and m[0, 0, 0].tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="lengths"):
        padding_mask(torch.tensor([0]), 3)


@pytest.mark.parametrize("masked", [False, True])
def test_scaled_dot_product_attention_matches_pytorch(masked):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    mask = (torch.rand(5, 7) > 0.3) | torch.eye(5, 7, dtype=torch.bool) if masked else None
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    if masked:
        assert (weights[..., ~mask] == 0).all()
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 7))


def test_causal_attention_ignores_the_future():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 4)
    out, _ = scaled_dot_product_attention(x, x, x, causal_mask(6))
    changed = x.clone()
    changed[:, 4:] = 100.0
    out2, _ = scaled_dot_product_attention(changed, changed, changed, causal_mask(6))
    torch.testing.assert_close(out[:, :4], out2[:, :4])


def test_split_and_merge_heads_are_inverse_and_ordered():
    x = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    h = split_heads(x, 4)
    assert h.shape == (2, 4, 3, 2) and h[0, 1, 0].tolist() == [2.0, 3.0]
    torch.testing.assert_close(merge_heads(h), x)


def copy_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)


def test_multi_head_attention_matches_pytorch():
    torch.manual_seed(0)
    ours, theirs = MultiHeadAttention(16, 4), nn.MultiheadAttention(16, 4, batch_first=True)
    copy_attention(ours, theirs)
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    keep = padding_mask(torch.tensor([7, 3]), 7)
    out, weights = ours(q, kv, kv, keep)
    ref, ref_weights = theirs(q, kv, kv, key_padding_mask=~keep[:, 0, 0], average_attn_weights=False)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(weights, ref_weights)


def copy_norm_ff(ours, theirs, norms):
    with torch.no_grad():
        theirs.linear1.load_state_dict(ours.ff[0].state_dict())
        theirs.linear2.load_state_dict(ours.ff[3].state_dict())
        for n in norms:
            getattr(theirs, n).load_state_dict(getattr(ours, n).state_dict())


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_pytorch(norm_first):
    torch.manual_seed(0)
    ours = EncoderLayer(16, 4, 32, norm_first=norm_first).eval()
    theirs = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    copy_attention(ours.self_attn, theirs.self_attn)
    copy_norm_ff(ours, theirs, ["norm1", "norm2"])
    x = torch.randn(2, 6, 16)
    keep = padding_mask(torch.tensor([6, 4]), 6)
    torch.testing.assert_close(ours(x, keep), theirs(x, src_key_padding_mask=~keep[:, 0, 0]))


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_pytorch(norm_first):
    torch.manual_seed(0)
    ours = DecoderLayer(16, 4, 32, norm_first=norm_first).eval()
    theirs = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    copy_attention(ours.self_attn, theirs.self_attn)
    copy_attention(ours.cross_attn, theirs.multihead_attn)
    copy_norm_ff(ours, theirs, ["norm1", "norm2", "norm3"])
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 6, 16)
    keep = padding_mask(torch.tensor([6, 2]), 6)
    ref = theirs(x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=~keep[:, 0, 0])
    torch.testing.assert_close(ours(x, memory, causal_mask(5), keep), ref)


def test_sinusoidal_encoding_values():
    pe = sinusoidal_encoding(50, 8)
    assert pe.shape == (50, 8)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1, 0, 1, 0, 1, 0, 1]))
    torch.testing.assert_close(pe[7, 2], torch.sin(torch.tensor(7 / 10000 ** (2 / 8))))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(4, 5)


def test_seq2seq_transformer_overfits_a_batch_and_decodes_it():
    torch.manual_seed(0)
    src = torch.randint(3, 12, (8, 6))
    tgt = torch.cat([torch.ones(8, 1, dtype=torch.long), src.flip(1), torch.full((8, 1), 2)], dim=1)  # BOS ... EOS
    model = Seq2SeqTransformer(12, 12, d_model=32, heads=4, layers=2, d_ff=64, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        logits = model(src, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 12), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    model.eval()
    decoded = model.greedy_decode(src, bos_id=1, eos_id=2, max_len=10)
    assert torch.equal(decoded[:, :7], tgt[:, 1:])


def test_additive_attention_weights_ignore_padding():
    from course_lib.nn import AdditiveAttention

    torch.manual_seed(0)
    attend = AdditiveAttention(4, 6, 8)
    keys = torch.randn(2, 5, 6)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    context, weights = attend(torch.randn(2, 4), keys, mask)
    assert context.shape == (2, 6) and weights.shape == (2, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    assert (weights[1, 2:] == 0).all()
    torch.testing.assert_close(context, (weights[..., None] * keys).sum(1))


@pytest.mark.parametrize("attention", [True, False])
def test_seq2seq_gru_overfits_a_batch(attention):
    from course_lib.models.seq2seq import Seq2SeqGRU

    torch.manual_seed(0)
    src = torch.randint(3, 12, (8, 5))
    src[:4, 4] = 0  # some padded rows
    tgt = torch.cat([torch.ones(8, 1, dtype=torch.long), torch.randint(3, 12, (8, 4)), torch.full((8, 1), 2)], dim=1)
    model = Seq2SeqGRU(12, 12, embed=16, hidden=32, attention=attention)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = F.cross_entropy(model(src, tgt[:, :-1]).reshape(-1, 12), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    decoded, alignment = model.eval().greedy_decode(src, bos_id=1, eos_id=2, max_len=8)
    assert torch.equal(decoded[:, :5], tgt[:, 1:])
    if attention:
        assert alignment.shape == (8, decoded.shape[1], 5) and (alignment[:4, :, 4] == 0).all()
    else:
        assert alignment is None


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_a_translator_config_holds_its_constructors_size_arguments_and_defaults(kind):
    """Each config is the one statement of a model's sizes: its fields are keyword arguments of the constructor
    with the same defaults, so `Model(src, tgt, **asdict(config))` builds what the config says."""
    import inspect
    from dataclasses import asdict, fields

    from course_lib.models.seq2seq import Seq2SeqGRU, Seq2SeqGRUConfig
    from course_lib.models.transformer import Seq2SeqTransformerConfig

    model_class, config_class = {
        "gru": (Seq2SeqGRU, Seq2SeqGRUConfig),
        "transformer": (Seq2SeqTransformer, Seq2SeqTransformerConfig),
    }[kind]
    keywords = {
        name: p.default
        for name, p in inspect.signature(model_class).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert {f.name: f.default for f in fields(config_class)}.items() <= keywords.items()
    small = {"gru": Seq2SeqGRUConfig(embed=8, hidden=12), "transformer": Seq2SeqTransformerConfig(d_model=16, d_ff=24)}
    model = model_class(10, 11, **asdict(small[kind]))
    if kind == "gru":
        assert model.src_embed.weight.shape == (10, 8) and model.decoder.hidden_size == 12
    else:
        assert model.head.weight.shape == (11, 16)
        assert {p.shape for p in model.encoder[0].parameters()} >= {(24, 16), (16, 24)}  # the feed-forward's d_ff
