"""Lesson 06's controllable generation: the plays parsed into speakers, casts and speeches, control-code batches,
and a GPT grown by the codes' tokens (course_lib.data.plays, course_lib.text.control)."""

import torch

from course_lib.data import plays
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.text import control

PLAY = """ACT I.

SCENE I. A room.

[Enter Hamlet and Horatio.]

Ham.
Speak, Horatio, and say what thou hast seen this night upon the platform.

Hor.
My lord, I saw him. [Aside.] Too briefly.

Ham.
Ay.

Hor.
Indeed, my lord, it was a thing of wonder to behold at midnight.
"""


def test_speaker_names_skip_act_and_scene_titles():
    assert plays.speaker_names(PLAY) == ["Ham", "Hor", "Ham", "Hor"]  # "Ay." is a speech, not a heading
    starts = plays.speech_starts(PLAY)
    assert [PLAY[s : s + 4] for s in starts.tolist()] == ["Ham.", "Hor.", "Ham.", "Hor."]


def test_casts_keep_names_unique_to_one_play():
    texts = {
        "a": "X.\nhi\n\nX.\nhi\n\nX.\nyo\n\nBOTH.\nno\n\nBOTH.\nno\n\nBOTH.\nno\n",
        "b": "Y.\nhi\n\nY.\nhi\n\nY.\nyo\n\nBOTH.\nno\n\nBOTH.\nno\n\nBOTH.\nno\n",
    }
    assert plays.casts(texts) == {"a": {"X"}, "b": {"Y"}}
    assert plays.cast_shares("X.\nhey\n\nY.\nho\n\nX.\nhe\n\nZ.\nhu", {"a": {"X"}, "b": {"Y"}}) == {"a": 0.5, "b": 0.25}


def test_speeches_parse_headings_and_drop_stage_directions(monkeypatch):
    monkeypatch.setattr(plays, "work_text", lambda title, split: PLAY)
    found = plays.speeches("train", ("Hamlet",), min_chars=10)
    assert [(s.speaker, s.label) for s in found] == [("Ham", 0), ("Hor", 0), ("Hor", 0)]
    assert found[1].text == "My lord, I saw him. Too briefly."


def test_control_batch_starts_every_window_at_a_speech_after_its_code():
    ids = torch.arange(len(PLAY))
    x, y = control.control_batch([ids], [plays.speech_starts(PLAY)], 1000, 6, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 8)
    assert (x[:, 0] == 1000).all() and torch.equal(x[:, 1:], y[:, :-1])
    assert set(y[:, 0].tolist()) <= set(plays.speech_starts(PLAY).tolist())


def test_with_control_codes_keeps_the_model_and_adds_tokens():
    torch.manual_seed(0)
    base = GPT(GPTConfig(vocab_size=10, block_size=8, layers=1, heads=2, d_model=16)).eval()
    grown = control.with_control_codes(base, 3).eval()
    idx = torch.randint(10, (2, 8))
    assert grown.config.vocab_size == 13 and grown.head.weight is grown.tok_emb.weight
    torch.testing.assert_close(grown(idx)[0][..., :10], base(idx)[0])
