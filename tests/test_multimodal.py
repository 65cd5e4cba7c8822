"""Lessons 12-13: the captioned shapes, CLIP's loss and metrics against independent computations, a tiny CLIP
that overfits a batch, the conditioning of the decoder and the prior."""

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from course_lib.data import shapes
from course_lib.models.clip import CLIP, CLIPConfig
from course_lib.models.prior import Prior
from course_lib.models.unet import UNet, UNetConfig
from course_lib.multimodal import clip_training, text_to_image
from course_lib.vision.diffusion import cosine_schedule, diffusion_loss, guided_noise


def test_shapes_are_deterministic_and_captions_name_the_scene():
    a, b = shapes.make_shapes(300, "train"), shapes.make_shapes(300, "train")
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert a.images.shape == (300, 3, shapes.SIDE, shapes.SIDE) and 0 <= a.images.min() and a.images.max() <= 1
    for text, scene in zip(a.captions, a.attributes):
        assert torch.equal(shapes.scene_of(text), scene), text
    assert shapes.decode(a.tokens) == a.captions
    assert not torch.equal(shapes.make_shapes(300, "test").images, a.images)


def test_held_out_objects_never_in_training_and_always_in_unseen():
    def held(scene):
        return shapes.is_held_out(int(scene[1]), int(scene[2])) or shapes.is_held_out(int(scene[4]), int(scene[5]))

    assert not any(held(s) for s in shapes.make_shapes(3000, "train").attributes)
    assert all(held(s) for s in shapes.make_shapes(500, "unseen").attributes)
    assert not any("green triangle" in c or "blue square" in c for c in shapes.make_shapes(3000, "train").captions)


def test_objects_are_drawn_where_the_layout_says():
    # a red circle left of a blue square; a yellow triangle above a green circle
    scene = torch.tensor([[1, 0, 0, 0, 2, 1], [2, 3, 2, 0, 1, 0]])
    images = shapes.render(scene)
    left, right = images[0, :, :, :8].sum((1, 2)), images[0, :, :, 8:].sum((1, 2))  # (3,) colour totals
    assert left.argmax() == 0 and right.argmax() == 2  # red on the left, blue on the right
    top, bottom = images[1, :, :8].sum((1, 2)), images[1, :, 8:].sum((1, 2))
    assert top[2] < 0.2 * top[0] and top[1] > 0.5 * top[0]  # yellow: red and green, little blue
    assert bottom.argmax() == 1  # green below


def test_bad_captions_and_splits_are_refused():
    with pytest.raises(ValueError, match="not a caption"):
        shapes.scene_of("a purple circle")
    with pytest.raises(ValueError, match="unknown words"):
        shapes.encode(["a red hexagon"])
    with pytest.raises(ValueError, match="split"):
        shapes.make_shapes(3, "validation")


def test_hard_negatives_keep_the_words_and_change_the_scene():
    text = "a red circle left of a blue square"
    assert clip_training.hard_negative(text, "colours") == "a blue circle left of a red square"
    assert clip_training.hard_negative(text, "shapes") == "a red square left of a blue circle"
    assert clip_training.hard_negative(text, "relation") == "a red circle right of a blue square"
    for kind in clip_training.SWAPS:
        wrong = clip_training.hard_negative(text, kind)
        assert sorted(wrong.replace("right", "left").split()) == sorted(text.split())
        assert not torch.equal(shapes.scene_of(wrong), shapes.scene_of(text))
    assert "green triangle" not in " ".join(clip_training.one_object_negatives("a small green circle"))
    with pytest.raises(ValueError):
        clip_training.hard_negative("a small red circle", "colours")


def test_contrastive_loss_is_the_mean_of_two_cross_entropies():
    logits = torch.randn(5, 5) * 3
    right = torch.arange(5)
    expected = (F.cross_entropy(logits, right) + F.cross_entropy(logits.T, right)) / 2
    torch.testing.assert_close(clip_training.contrastive_loss(logits), expected)
    extra = torch.cat([logits, torch.randn(5, 7)], dim=1)  # extra negatives: only the rows see them
    rows = F.cross_entropy(extra, right)
    torch.testing.assert_close(clip_training.contrastive_loss(extra), (rows + F.cross_entropy(logits.T, right)) / 2)


def test_recall_and_zero_shot_against_direct_computation():
    g = torch.Generator().manual_seed(0)
    sim, rel = torch.randn(30, 40, generator=g), torch.rand(30, 40, generator=g) < 0.1
    for k in (1, 5):
        order = sim.argsort(1, descending=True)[:, :k]
        expected = sum(bool(rel[i, order[i]].any()) for i in range(30)) / 30
        assert clip_training.recall_at_k(sim, rel, k) == pytest.approx(expected)
    images, prompts = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(3, 8), dim=-1)
    torch.testing.assert_close(clip_training.zero_shot_logits(images, prompts, 1), images @ prompts.T)


def test_text_tower_ignores_padding_and_reads_word_order():
    torch.manual_seed(0)
    model = CLIP(CLIPConfig()).eval()
    tokens = shapes.encode(["a red circle left of a blue square", "a small red circle"])
    short = tokens[1:, :5]  # the same one-object caption with fewer pads
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(tokens[1:]), model.encode_text(short), atol=1e-5, rtol=1e-4)
        swapped = model.encode_text(shapes.encode(["a blue circle left of a red square"]))
        assert not torch.allclose(model.encode_text(tokens[:1]), swapped)


def test_a_tiny_clip_overfits_one_batch():
    torch.manual_seed(0)
    data = shapes.make_shapes(16, "train", seed=3)
    keep = [i for i, c in enumerate(data.captions) if data.captions.count(c) == 1]
    model = CLIP(CLIPConfig(layers=1, d_model=32, d_ff=64, embed=32))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = clip_training.contrastive_loss(model(data.images[keep], data.tokens[keep]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1
    assert model.scale().item() <= CLIPConfig().max_logit_scale + 1e-4


def test_vector_conditioning_uses_the_zero_vector_as_no_condition():
    torch.manual_seed(0)
    model = UNet(UNetConfig(steps=20, width=8, channels=3, cond=4))
    x, t, cond = torch.randn(2, 3, 16, 16), torch.tensor([3, 7]), F.normalize(torch.randn(2, 4), dim=-1)
    assert model(x, t, cond).shape == x.shape
    both = guided_noise(model, x, t, cond, 2.0)
    expected = 3 * model(x, t, cond) - 2 * model(x, t, torch.zeros_like(cond))
    torch.testing.assert_close(both, expected, atol=1e-5, rtol=1e-4)
    assert torch.isfinite(diffusion_loss(model, x, cond, cosine_schedule(20), drop_label=0.5))


def test_prior_learns_a_fixed_text_to_image_map():
    torch.manual_seed(0)
    text = F.normalize(torch.randn(8, 16), dim=-1)
    image = F.normalize(text @ torch.randn(16, 16), dim=-1)
    prior = Prior(embed=16, width=64, steps=20)
    schedule = cosine_schedule(20)
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(600):
        loss = text_to_image.prior_loss(prior, image, text, schedule)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predicted = text_to_image.prior_sample(prior, text, ddim_steps=10)
    assert (predicted * image).sum(-1).mean() > 0.9


def test_the_shipped_clip_and_decoder_fit_their_recipes_and_each_other(tmp_path, monkeypatch):
    from course_lib.artifacts import SHIPPED, read_metadata, weights_digest

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))  # nothing cached: what a fresh clone loads
    kind = text_to_image.DECODER.clip
    clip_meta = read_metadata(f"shapes-clip-{kind}", clip_training.clip_key(kind), shipped=SHIPPED)
    remake = "re-make the shipped pair with `python -m course_lib.multimodal.text_to_image ship`"
    assert clip_meta is not None, f"lesson 12's hard-negative recipe changed: {remake}"
    clip, _ = clip_training.pretrained_clip(kind)  # loads the shipped one, trains nothing
    key = {**asdict(text_to_image.DECODER), "clip_weights": weights_digest(clip)}
    decoder_meta = read_metadata("shapes-decoder", key, shipped=SHIPPED)
    assert decoder_meta is not None, f"the decoder's recipe changed, or it was not made on the shipped CLIP: {remake}"
    assert len(decoder_meta["metrics"]["step_loss"]) == text_to_image.DECODER.train.steps
    assert len(clip_meta["metrics"]["step_loss"]) == clip_training.RECIPES[kind].train.steps


def test_a_decoder_is_never_loaded_beside_another_clip():
    from course_lib.artifacts import weights_digest

    a, b = CLIP(CLIPConfig()), CLIP(CLIPConfig())
    assert weights_digest(a) != weights_digest(b)  # two random initialisations
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.image_tower.head.weight[0, 0] += 1e-6  # one weight, one bit or so
    assert weights_digest(a) != weights_digest(b)


def test_binding_gives_a_bag_of_words_half_and_an_order_reader_all(monkeypatch):
    """The binding test's scale: a text embedding that ignores word order ties every colour or shape swap (scored
    half, a coin toss), one that reads the words in order and matches the picture beats every swap."""
    data = shapes.make_shapes(60, "test")
    pairs = [i for i, c in enumerate(data.captions) if len(c.split()) > 4]
    vocabulary = sorted({w for c in data.captions for w in c.split()} | set(clip_training.OPPOSITE))
    words = F.normalize(torch.randn(len(vocabulary), 64, generator=torch.Generator().manual_seed(0)), dim=-1)

    def bag(caption: str) -> torch.Tensor:  # the words in sorted order: the same sum, bit for bit, for any order
        return F.normalize(sum(words[vocabulary.index(w)] for w in sorted(caption.split())), dim=-1)

    def in_order(caption: str) -> torch.Tensor:
        return F.normalize(sum((k + 1) * words[vocabulary.index(w)] for k, w in enumerate(caption.split())), dim=-1)

    model = CLIP(CLIPConfig())
    for encode, expected in ((bag, 0.5), (in_order, 1.0)):
        pictures = torch.stack([encode(data.captions[i]) for i in pairs])  # each picture "is" its caption
        monkeypatch.setattr(
            clip_training, "embed_texts", lambda m, captions, e=encode: torch.stack(list(map(e, captions)))
        )
        monkeypatch.setattr(clip_training, "embed_images", lambda m, images, p=pictures: p)
        for kind in ("colours", "shapes"):
            assert clip_training.binding_accuracy(model, data, kind) == pytest.approx(expected), (encode.__name__, kind)
