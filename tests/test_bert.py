"""Lesson 07's BERT: masking, the masked-LM loss, pooling, pre-training and fine-tuning on tiny data, sentence windows,
the cloze head, the shipped encoder, and the plays' questions it is tested on (course_lib.models.bert,
course_lib.text.masked_lm, course_lib.data.plays.questions)."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.artifacts import read_metadata
from course_lib.data import plays
from course_lib.models.bert import (
    IGNORE,
    BertConfig,
    BertEncoder,
    Classifier,
    ClozeClassifier,
    MaskedLM,
    mask_tokens,
    mean_pool,
    mlm_loss,
)
from course_lib.text import masked_lm as mlm


def test_mask_tokens_follows_the_80_10_10_recipe():
    ids = torch.randint(0, 100, (400, 250), generator=torch.Generator().manual_seed(0))
    inputs, labels = mask_tokens(ids, mask_id=101, vocab_size=100, generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE
    assert abs(chosen.float().mean().item() - 0.15) < 0.005
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    masked = (inputs[chosen] == 101).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert abs(masked - 0.8) < 0.01 and abs(kept - (0.1 + 0.1 / 100)) < 0.01
    again = mask_tokens(ids, mask_id=101, vocab_size=100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)
    padding = torch.zeros_like(ids, dtype=torch.bool)
    _, none = mask_tokens(ids, mask_id=101, vocab_size=100, generator=torch.Generator(), maskable=padding)
    assert (none == IGNORE).all()


def test_mlm_loss_counts_chosen_positions_only():
    logits = torch.randn(2, 5, 7)
    labels = torch.full((2, 5), IGNORE)
    labels[0, 1], labels[1, 4] = 3, 6
    expected = (
        F.cross_entropy(logits[0, 1:2], torch.tensor([3])) + F.cross_entropy(logits[1, 4:5], torch.tensor([6]))
    ) / 2
    torch.testing.assert_close(mlm_loss(logits, labels), expected)


def test_masked_lm_logits_at_chosen_positions_equal_the_full_logits_there():
    torch.manual_seed(0)
    model = MaskedLM(BertConfig(vocab_size=20, max_len=8, layers=1, heads=2, d_model=16, dropout=0.0)).eval()
    ids = torch.randint(0, 20, (3, 8))
    at = torch.rand(3, 8) < 0.3
    torch.testing.assert_close(model(ids, at=at), model(ids)[at])
    with pytest.raises(ValueError, match="bool tensor shaped like ids"):
        model(ids, at=at.long())


def test_pretrain_mlm_lowers_the_loss_on_a_repetitive_corpus():
    torch.manual_seed(0)
    model = MaskedLM(BertConfig(vocab_size=8, max_len=12, layers=1, heads=2, d_model=32, dropout=0.0))
    ids = torch.arange(6).repeat(200)  # 0 1 2 3 4 5 0 1 ...: every masked token follows from its neighbours
    training = mlm.MLMTraining(steps=300, batch=16, lr=3e-3, warmup=10, weight_decay=0.0, mask_p=0.15, short_p=0.0)
    record = mlm.pretrain_mlm(model, ids, training, progress=False)
    first, last = record["step_loss"][:10], record["step_loss"][-10:]
    assert sum(last) / 10 < 0.3 < sum(first) / 10, (first, last)  # ln 6 = 1.8 knowing nothing


def test_pretrain_mlm_with_short_windows_never_targets_padding_and_still_learns(monkeypatch):
    seen = []
    real_mask_tokens = mlm.mask_tokens

    def spy(ids, **kwargs):
        inputs, labels = real_mask_tokens(ids, **kwargs)
        seen.append((ids, kwargs["maskable"], labels))
        return inputs, labels

    monkeypatch.setattr(mlm, "mask_tokens", spy)
    torch.manual_seed(0)
    model = MaskedLM(BertConfig(vocab_size=8, max_len=12, layers=1, heads=2, d_model=32, dropout=0.0))
    ids = torch.arange(6).repeat(200)
    training = mlm.MLMTraining(steps=300, batch=16, lr=3e-3, warmup=10, weight_decay=0.0, mask_p=0.15, short_p=0.5)
    record = mlm.pretrain_mlm(model, ids, training, progress=False)
    pad = 6  # the id before <mask> (7)
    windows, maskable, labels = map(torch.stack, zip(*seen))
    assert (windows[~maskable] == pad).all() and (labels[~maskable] == IGNORE).all()
    assert 0.3 < (~maskable).any(-1).float().mean() < 0.7  # about half the windows were cut short
    assert sum(record["step_loss"][-10:]) / 10 < 1.0  # ln 6 = 1.8 knowing nothing


def test_mean_pool_ignores_padding_and_padding_does_not_change_real_positions():
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    torch.testing.assert_close(mean_pool(hidden, mask)[0], hidden[0, :2].mean(0))
    torch.manual_seed(0)
    encoder = BertEncoder(BertConfig(vocab_size=20, max_len=8, layers=2, heads=2, d_model=16, dropout=0.0)).eval()
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0]])
    out_short = encoder(short, torch.ones(1, 3, dtype=torch.bool))
    out_padded = encoder(padded, padded != 0)
    torch.testing.assert_close(out_padded[:, :3], out_short, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="max_len=8"):
        encoder(torch.zeros(1, 9, dtype=torch.long))


def test_encoder_layer_matches_pytorch():
    """BERT's layers are lesson 03's EncoderLayer (pre-LN), which equals nn.TransformerEncoderLayer(norm_first=True)."""
    torch.manual_seed(0)
    encoder = BertEncoder(BertConfig(vocab_size=20, max_len=8, layers=1, heads=2, d_model=16, dropout=0.0)).eval()
    ours = encoder.layers[0]
    ref = torch.nn.TransformerEncoderLayer(
        16, 2, 64, dropout=0.0, activation="relu", batch_first=True, norm_first=True
    ).eval()
    attn = ours.self_attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        ref.self_attn.out_proj.weight.copy_(attn.out_proj.weight)
        ref.self_attn.out_proj.bias.copy_(attn.out_proj.bias)
        ref.linear1.weight.copy_(ours.ff[0].weight)
        ref.linear1.bias.copy_(ours.ff[0].bias)
        ref.linear2.weight.copy_(ours.ff[3].weight)
        ref.linear2.bias.copy_(ours.ff[3].bias)
        for a, b in ((ref.norm1, ours.norm1), (ref.norm2, ours.norm2)):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
    x = torch.randn(2, 6, 16)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_tiny_masked_lm_learns_from_context_and_classifier_overfits():
    torch.manual_seed(0)
    model = MaskedLM(BertConfig(vocab_size=12, max_len=10, layers=1, heads=2, d_model=32, dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):  # every row repeats one token: a masked token can only be read from the others
        data = torch.randint(0, 10, (32, 1), generator=generator).expand(32, 10)
        inputs, labels = mask_tokens(data, mask_id=11, vocab_size=10, generator=generator, p=0.3)
        loss = mlm_loss(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2, loss.item()  # ln 10 = 2.3 without context

    ids = torch.arange(10)[:, None].expand(10, 10)
    labels = (torch.arange(10) < 5).long()
    mask = torch.ones_like(ids, dtype=torch.bool)
    classifier = mlm.finetune(
        Classifier(model.encoder, 2),
        ids,
        mask,
        labels,
        mlm.FinetuneTraining(steps=60, batch=10, lr=3e-3, warmup=6, weight_decay=0.0),
    )
    assert (mlm.predict(classifier, ids, mask) == labels).all()
    emb = mlm.embed(model.encoder, ids, mask)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(10))


def test_balanced_subset_and_encode_batch():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    subset = mlm.balanced_subset(labels, 2, seed=0)
    assert torch.bincount(labels[subset]).tolist() == [2, 2, 1]
    from course_lib.tokenizers import BPETokenizer

    tok = BPETokenizer.train("abab abab cdcd", 260, special_tokens=mlm.SPECIAL)
    ids, mask = mlm.encode_batch(["abab", "abab abab cdcd cdcd"], tok, 4)
    assert ids.shape == (2, 4) and mask[1].all() and not mask[0].all()
    assert (ids[~mask] == tok.special["<pad>"]).all()


def test_questions_hide_the_mark_and_label_by_it(monkeypatch):
    text = (
        "What say you to my suit, good sir? I say the night is cold. O, fie upon it! "
        "Dost thou hear me now? Too short. HAMLET, Prince of Denmark."
    )
    monkeypatch.setattr(plays, "plays", lambda: ("Hamlet",))
    monkeypatch.setattr(plays, "speeches", lambda split, titles: [plays.Speech(text, 0, "Ham")])
    found = [(line.text, line.label, line.play) for line in plays.questions("train")]
    assert found == [
        ("What say you to my suit, good sir", 1, "Hamlet"),
        ("I say the night is cold", 0, "Hamlet"),
        ("Dost thou hear me now", 1, "Hamlet"),
    ]  # no exclamation, no 2-word line, no cast list


END, SPACE, PAD_ID = 1, 2, 9  # a toy text: words 3-8, "." = 1, " " = 2


def test_sentence_starts_follow_end_marks_and_skip_spaces():
    ids = torch.tensor([3, 4, 1, 2, 5, 6, 1, 7, 1, 1, 2, 8])  # "ab. cd.e.. f"
    assert mlm.sentence_starts(ids, [END], [SPACE]).tolist() == [4, 7, 11]


def test_sentence_windows_begin_at_a_sentence_and_short_ones_end_at_a_mark():
    generator = torch.Generator().manual_seed(0)
    sentences = []  # 5-word sentences of words 3-5, 14-word ones of words 6-8, in turn
    for i in range(300):
        words = (
            torch.randint(3, 6, (5,), generator=generator) if i % 2 else torch.randint(6, 9, (14,), generator=generator)
        )
        sentences += [*words.tolist(), END, SPACE]
    ids = torch.tensor(sentences)
    starts = mlm.sentence_starts(ids, [END], [SPACE])
    windows, pad_mask = mlm.sentence_windows(
        ids, starts, 400, 12, short_p=0.5, end_ids=[END], pad_id=PAD_ID, generator=torch.Generator().manual_seed(1)
    )
    assert windows.shape == pad_mask.shape == (400, 12)
    begins = {tuple(ids[s : s + 4].tolist()) for s in starts.tolist()}
    assert all(tuple(w[:4].tolist()) in begins for w in windows)  # every window opens a sentence
    lengths = pad_mask.sum(1)
    short = lengths < 12
    assert 0.35 < short.float().mean() < 0.65 and (lengths >= 4).all()
    assert (windows[~pad_mask] == PAD_ID).all()
    five = windows[:, 0] < 6  # a window that opens a 5-word sentence
    assert (lengths[short & five] == 6).all() and (windows[short & five, 5] == END).all()  # cut right after its mark
    assert len(set(lengths[short & ~five].tolist())) > 3  # no mark to cut at: a random length
    with pytest.raises(ValueError, match="sentence starts"):
        mlm.sentence_windows(
            ids[:10], starts[starts > 100], 2, 12, short_p=0.5, end_ids=[END], pad_id=PAD_ID, generator=generator
        )
    model = MaskedLM(BertConfig(vocab_size=PAD_ID + 2, max_len=12, layers=1, heads=2, d_model=16))
    with pytest.raises(ValueError, match="end_ids"):
        mlm.pretrain_mlm(model, ids, mlm.MLMTraining(steps=1, batch=2, warmup=1), starts=starts, progress=False)


def test_cloze_batch_appends_one_mask_and_the_cloze_head_reads_the_label_words_there():
    from course_lib.tokenizers import BPETokenizer

    tok = BPETokenizer.train("what say you? I say so. " * 20, 270, special_tokens=mlm.SPECIAL)
    ids, mask = mlm.cloze_batch(["what say you", "I say so " * 10], tok, 8)
    mask_id = tok.special["<mask>"]
    assert ids.shape == (2, 8) and ((ids == mask_id).sum(1) == 1).all()
    assert ids[1, -1] == mask_id and mask[1].all()  # cut to leave room for the <mask>
    n = len(tok.encode("what say you"))
    assert ids[0, n] == mask_id and mask[0].sum() == n + 1 and (ids[0, n + 1 :] == tok.special["<pad>"]).all()
    torch.manual_seed(0)
    model = MaskedLM(BertConfig(vocab_size=tok.vocab_size, max_len=8, layers=1, heads=2, d_model=16)).eval()
    labels = [tok.encode(".")[0], tok.encode("?")[0]]
    head = ClozeClassifier(model, labels, mask_id)
    torch.testing.assert_close(head(ids, mask), model(ids, mask)[ids == mask_id][:, labels])
    with pytest.raises(ValueError, match="exactly one <mask>"):
        head(ids.masked_fill(ids == mask_id, 0), mask)


def test_the_shipped_encoder_fits_the_recipe(tmp_path):
    key = mlm.pretraining_key()
    meta = read_metadata("shakespeare-bert", key, cache=tmp_path, shipped=mlm.SHIPPED)
    assert meta is not None, (
        "PRETRAIN changed: re-make the shipped encoder with `python -m course_lib.text.masked_lm ship`"
    )
    assert len(meta["metrics"]["step_loss"]) == mlm.PRETRAIN.train.steps
    assert meta["path"].startswith(str(mlm.SHIPPED)) and sum(meta["metrics"]["step_loss"][-50:]) / 50 < 3.0


def test_by_length_cuts_padding_per_batch_and_keeps_the_rows_order():
    torch.manual_seed(0)
    encoder = BertEncoder(BertConfig(vocab_size=12, max_len=10, layers=1, heads=2, d_model=16, dropout=0.0)).eval()
    lengths = torch.randint(1, 11, (50,))
    mask = torch.arange(10) < lengths[:, None]
    ids = torch.randint(0, 11, (50, 10)).masked_fill(~mask, 11)
    widths = []

    def pooled(i, m):
        widths.append(i.shape[1])
        return mean_pool(encoder(i, m), m)

    with torch.no_grad():
        direct = mean_pool(encoder(ids, mask), mask)
    torch.testing.assert_close(mlm.by_length(pooled, ids, mask, batch=8), direct)
    assert widths == sorted(widths) and widths[0] < 10  # short rows ran without their padding
    torch.testing.assert_close(mlm.embed(encoder, ids, mask, batch=8), F.normalize(direct, dim=-1))
