"""Lessons 01-03's translation task: number pairs as tensors, the padded loss, evaluation, a quick training run and
attention recording (course_lib.text.translation)."""

import pytest
import torch

from course_lib.models.transformer import Seq2SeqTransformer
from course_lib.nn import record_attention
from course_lib.plots import AttentionRecord, attention_figure
from course_lib.text import translation as nmt


@pytest.fixture(scope="module")
def task():
    return nmt.number_task(max_number=99_999, sample=600, seed=0)


def test_task_tensors_round_trip(task):
    assert task.train_src.shape[0] == len(task.train) and task.test_tgt.shape[0] == len(task.test)
    assert task.tgt_vocab.decode(task.train_tgt[0, 1:]) == task.train[0].french
    assert task.src_vocab.decode(task.test_src[3]) == task.test[3].english
    assert (task.train_tgt[:, 0] == task.tgt_vocab.bos_id).all()


def test_sequence_loss_ignores_padding():
    logits = torch.randn(2, 4, 5)
    targets = torch.tensor([[1, 2, 0, 0], [3, 4, 1, 0]])
    real = targets != 0
    expected = torch.nn.functional.cross_entropy(logits[real], targets[real])
    torch.testing.assert_close(nmt.sequence_loss(logits, targets), expected)
    with pytest.raises(ValueError, match="do not fit"):
        nmt.sequence_loss(logits, targets[:, :3])


def test_a_perfect_model_scores_one_and_lengths_are_counted(task):
    class Oracle(torch.nn.Module):
        """Decodes by looking the source up in the test set: exact match must be 1."""

        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))
            self.answers = {tuple(s[s != 0].tolist()): t[1:] for s, t in zip(task.test_src, task.test_tgt)}

        def greedy_decode(self, src, bos, eos, max_len):
            return torch.nn.utils.rnn.pad_sequence(
                [self.answers[tuple(r[r != 0].tolist())] for r in src], batch_first=True
            )

    result = nmt.evaluate_translator(Oracle(), task, batch_size=7)
    assert result["exact_match"] == 1.0 and result["token_accuracy"] == 1.0 and result["bleu"] == pytest.approx(100.0)
    assert sum(count for _, count in result["by_length"].values()) == len(task.test)


def test_a_transformer_learns_the_task_quickly(task):
    torch.manual_seed(0)
    model = nmt.build_translator("transformer", task)
    before = nmt.evaluate_translator(model, task)["exact_match"]
    history = nmt.train_translator(model, task, nmt.TranslatorTraining(epochs=12, lr=3e-3, batch=32), progress=False)
    after = nmt.evaluate_translator(model, task)
    assert history.step_loss[-1] < 0.3 * history.step_loss[0]
    assert before == 0.0 and after["token_accuracy"] > 0.5


def test_record_attention_captures_every_layer_and_removes_its_hooks(task):
    model = Seq2SeqTransformer(len(task.src_vocab), len(task.tgt_vocab), d_model=16, heads=2, layers=2, d_ff=32)
    src, tgt = task.train_src[:3], task.train_tgt[:3, :-1]
    with record_attention(model) as maps:
        model(src, tgt)
    assert sorted(maps) == sorted(
        f"{p}.{i}.{a}"
        for i in range(2)
        for p, a in [("encoder", "self_attn"), ("decoder", "self_attn"), ("decoder", "cross_attn")]
    )
    assert maps["decoder.1.cross_attn"].shape == (3, 2, tgt.shape[1], src.shape[1])
    assert all(not m._forward_hooks for m in model.modules())
    record = nmt.transformer_attention(model, task, task.test[0].english)
    weights, queries, keys = record.maps["cross"]
    assert weights.shape[:2] == (2, 2) and keys == task.test[0].english.replace("-", " - ").replace(",", " ,").split()
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:3]))
    fig = attention_figure(record, "cross", layer=1)
    assert len(fig.axes) == 2


def test_attention_record_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="do not fit"):
        AttentionRecord("x", {"cross": (torch.rand(1, 1, 2, 3), ["a", "b"], ["c"])})
