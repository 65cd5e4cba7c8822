"""Lessons 09-10, 18: GAN training on the digits: the non-saturating losses, the two-player loop with its meters,
adaptive discriminator augmentation (ADA, Karras et al. 2020) and progressive growing in miniature.

A GAN has two networks and two optimizers taking turns, so it has its own loop here instead of
`course_lib.train.train`, which steps one model on one loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib.artifacts import SHIPPED, pretrained, ship_artifact
from course_lib.data.digits import Digits, load_digits, to_signed, to_unit
from course_lib.device import device_name, seeded, training_generator
from course_lib.models.gan import (
    Discriminator,
    GANConfig,
    GANPair,
    Generator,
    GrowingPair,
)
from course_lib.vision.judge_training import Yardstick, frechet_distance

# --- the losses --------------------------------------------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), batch mean, with D = sigmoid(logit): softplus(-real) + softplus(fake)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(G(z)) = softplus(-fake), batch mean."""
    return F.softplus(-fake_logits).mean()


# --- augmentation, and ADA's controller --------------------------------------------------------------------


def augment(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """ADA's augmentation, cut to one transform that suits 8x8 digits: each image is shifted, with probability p,
    by an integer offset of up to one pixel in each direction (background fills the gap). Applied to everything
    the discriminator sees, real and fake alike, so it never learns that augmented images are a sign of either;
    at p below about 0.8 the generator cannot learn to produce the augmentations. images (b, 1, s, s) in [-1, 1]."""
    if p <= 0:
        return images
    b, device = len(images), images.device

    def chosen() -> torch.Tensor:  # (b, 1, 1, 1): which images get this transform
        return (torch.rand(b, generator=generator) < p).to(device).view(b, 1, 1, 1)

    size = images.shape[-1]
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2, b), generator=generator).to(device)
    rows = torch.arange(size, device=device)[None, :, None] + dy[:, None, None]
    cols = torch.arange(size, device=device)[None, None, :] + dx[:, None, None]
    shifted = padded[torch.arange(b, device=device)[:, None, None], 0, rows, cols][:, None]
    images = torch.where(chosen(), shifted, images)
    return images


def ada_update(p: float, r_t: float, target: float, images_seen: int, speed_images: int) -> float:
    """One step of ADA's controller: r_t = E[sign D(real)] over the last interval; above the target the
    discriminator is overfitting, so p rises, below it p falls, by images_seen / speed_images (p could go
    from 0 to 1 in `speed_images` images), clamped to [0, 1]."""
    step = math.copysign(images_seen / speed_images, r_t - target) if r_t != target else 0.0
    return min(1.0, max(0.0, p + step))


# --- training ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GANTraining:
    steps: int = 2000
    batch: int = 64
    lr: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.99)
    generator_steps: int = 1  # generator updates per discriminator update
    subset: int = 0  # train on this many training digits (0: all of them)
    ada: bool = False  # adaptive discriminator augmentation
    ada_target: float = 0.6  # ADA's target for r_t
    ada_interval: int = 4  # steps between updates of p
    ada_speed: int = 20_000  # images over which p may go from 0 to 1
    meter_every: int = 100  # steps between two records of the meters
    ema: float = 0.995  # the sampled generator is a moving average of the trained one's weights (0: off)
    seed: int = 0


@dataclass(frozen=True)
class GANRecipe:
    model: GANConfig = field(default_factory=GANConfig)
    train: GANTraining = field(default_factory=GANTraining)


SMALL = 150  # ADA's experiment: 150 training digits, 10% of the training split
_COLLAPSE = GANTraining(steps=400, generator_steps=5, meter_every=50)
_SMALL = GANTraining(steps=3000, subset=SMALL, meter_every=250)
RECIPES: dict[str, GANRecipe] = {
    "conditional": GANRecipe(model=GANConfig(classes=10)),
    "collapse": GANRecipe(model=GANConfig(minibatch_std=False), train=_COLLAPSE),
    "collapse-fixed": GANRecipe(model=GANConfig(minibatch_std=True), train=_COLLAPSE),
    "small": GANRecipe(train=_SMALL),
    "small-ada": GANRecipe(train=replace(_SMALL, ada=True)),
}
# The experiments' pairs ship with the repository (about 1.6 MB each): on a CPU lesson 09 loads them and trains
# only its headline and growing GANs (2.8 minutes on 2 cores from an empty cache, the headline GAN most of it);
# their keys depend on their recipes alone.
SHIPPED_KINDS = ("collapse", "collapse-fixed", "small", "small-ada")


def training_subset(digits: Digits, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` training digits (every class equally often, as nearly as size allows), or all when size is 0."""
    if size == 0:
        return digits.train_images, digits.train_labels
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(digits.train_labels), generator=generator)
    per_class = [order[digits.train_labels[order] == c][: math.ceil(size / 10)] for c in range(10)]
    chosen = torch.stack(per_class, dim=1).flatten()[:size]  # interleaved, so any prefix is balanced
    return digits.train_images[chosen], digits.train_labels[chosen]


Meter = Callable[[Generator], dict[str, float]]


def train_gan(
    generator: Generator,
    discriminator: Discriminator,
    images: torch.Tensor,
    labels: torch.Tensor,
    t: GANTraining,
    *,
    average: Generator | None = None,
    meter: Meter | None = None,
    on_record: Callable[[list[dict]], None] | None = None,
    time_budget: float | None = None,
    progress: bool = False,
) -> dict:
    """Alternate discriminator and generator steps on `images` (n, 8, 8) in [0, 1].

    Every `t.meter_every` steps a record joins the history: the step, D's mean probability on real and on fake
    images, r_t = E[sign D(real)] (StyleGAN2-ADA's overfitting signal), the augmentation probability p and
    whatever `meter(generator)` returns (coverage, say); then `on_record(history)` runs (to redraw a live figure).
    `average`, when given, tracks an exponential moving average of the generator's weights (decay `t.ema`),
    which is what gets sampled and metered: it smooths out the last steps' oscillations. With `time_budget`,
    training stops at the first record after that many seconds of training (metering not counted).
    -> {"history": [...], "seconds": float}."""
    device = next(generator.parameters()).device
    conditional = generator.config.classes > 0
    real_all, labels_all = to_signed(images).to(device), labels.to(device)
    g_opt = torch.optim.Adam(generator.parameters(), lr=t.lr, betas=t.betas)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=t.lr, betas=t.betas)
    rng = training_generator(t.seed)
    p, signs, d_real, d_fake, history = 0.0, [], [], [], []
    start, metering = time.perf_counter(), 0.0
    generator.train(), discriminator.train()
    for step in tqdm(range(t.steps), disable=not progress, leave=False, desc="GAN", mininterval=0.5):
        pick = torch.randint(0, len(real_all), (t.batch,), generator=rng).to(device)
        real, y = real_all[pick], (labels_all[pick] if conditional else None)
        z = torch.randn(t.batch, generator.config.noise, generator=rng).to(device)
        # 1-3: real images, fakes from noise, the discriminator trained on both
        fake = generator(z, y)
        real_logits = discriminator(augment(real, p, rng), y)
        fake_logits = discriminator(augment(fake.detach(), p, rng), y)
        d_opt.zero_grad(set_to_none=True)
        discriminator_loss(real_logits, fake_logits).backward()
        d_opt.step()
        # 4: the generator trained to fool the discriminator (its gradient flows through D, which is not stepped)
        for k in range(t.generator_steps):
            if k > 0:
                z = torch.randn(t.batch, generator.config.noise, generator=rng).to(device)
            g_loss = generator_loss(discriminator(augment(generator(z, y), p, rng), y))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
        if average is not None:
            with torch.no_grad():
                for mine, tracked in zip(generator.state_dict().values(), average.state_dict().values()):
                    if tracked.dtype.is_floating_point:
                        tracked.lerp_(mine, 1 - t.ema)
                    else:
                        tracked.copy_(mine)
        signs.append(real_logits.detach().sign().mean().item())
        d_real.append(torch.sigmoid(real_logits.detach()).mean().item())
        d_fake.append(torch.sigmoid(fake_logits.detach()).mean().item())
        if t.ada and (step + 1) % t.ada_interval == 0:
            r_t = sum(signs[-t.ada_interval :]) / t.ada_interval
            p = ada_update(p, r_t, t.ada_target, t.batch * t.ada_interval, t.ada_speed)
        if (step + 1) % t.meter_every == 0 or step + 1 == t.steps:
            n = len(d_real[-t.meter_every :])
            record = {
                "step": step + 1,
                "d_real": sum(d_real[-n:]) / n,
                "d_fake": sum(d_fake[-n:]) / n,
                "r_t": sum(signs[-n:]) / n,
                "p": p,
            }
            if meter is not None:
                meter_start = time.perf_counter()
                shown = average if average is not None else generator
                shown.eval()
                with torch.no_grad():
                    record.update(meter(shown))
                shown.train()
                metering += time.perf_counter() - meter_start
            history.append(record)
            if on_record is not None:
                on_record(history)
            if time_budget is not None and time.perf_counter() - start - metering >= time_budget:
                break
    generator.eval(), discriminator.eval()
    if average is not None:
        average.eval()
    return {"history": history, "seconds": time.perf_counter() - start}


def pretrained_gan(
    kind: str = "conditional",
    *,
    device: torch.device | str = "cpu",
    meter: Meter | None = None,
    on_record: Callable[[list[dict]], None] | None = None,
    progress: bool = False,
    use_shipped: bool = True,
    retrain: bool = False,
) -> tuple[GANPair, dict]:
    """The lesson's GAN of one recipe, from the cache, else (an experiment's pair, if `use_shipped`) the checkpoint
    the repository ships, else trained now (about 1-3 minutes each on an idle 2-core CPU): -> (pair in eval mode,
    record).
    `meter` and `on_record` only run when it trains (the recorded history is returned otherwise); `retrain=True`
    always trains."""
    if kind not in RECIPES:
        raise ValueError(f"kind must be one of {sorted(RECIPES)}, got {kind!r}")
    recipe = RECIPES[kind]
    images, labels = training_subset(load_digits(), recipe.train.subset, recipe.train.seed)

    def build() -> GANPair:
        with seeded(recipe.train.seed):
            return GANPair(recipe.model)

    def fit(pair: GANPair) -> dict:
        with seeded(recipe.train.seed):
            return train_gan(
                pair.generator,
                pair.discriminator,
                images,
                labels,
                recipe.train,
                average=pair.average if recipe.train.ema else None,
                meter=meter,
                on_record=on_record,
                progress=progress,
            )

    shipped = SHIPPED if use_shipped and kind in SHIPPED_KINDS else None
    return pretrained(f"digits-gan-{kind}", build, fit, gan_key(kind), device=device, retrain=retrain, shipped=shipped)


def gan_key(kind: str) -> dict:
    """What names a trained pair in the cache: its kind and recipe."""
    return {"kind": kind, **asdict(RECIPES[kind])}


def ship(kinds: tuple[str, ...] = SHIPPED_KINDS, device: str = "cpu") -> list:
    """The experiments' pairs from this machine's cache (never the shipped ones) or trained now, written to the
    folder of shipped checkpoints in float32. -> the weights' paths."""
    made_on = device_name(device)
    paths = []
    for kind in kinds:
        pair, record = pretrained_gan(kind, device=device, use_shipped=False)
        paths.append(ship_artifact(f"digits-gan-{kind}", gan_key(kind), pair, record, made_on))
    return paths


@torch.no_grad()
def sample_gan(generator: Generator, n: int, labels: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """n samples (n, 8, 8) in [0, 1]; a conditional generator needs `labels` (n,)."""
    device = next(generator.parameters()).device
    z = torch.randn(n, generator.config.noise, generator=torch.Generator().manual_seed(seed)).to(device)
    was_training = generator.training
    generator.eval()
    out = to_unit(generator(z, None if labels is None else labels.to(device))).cpu()
    generator.train(was_training)
    return out


# --- progressive growing -----------------------------------------------------------------------------------


def digits_at(images: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 8, 8) in [0, 1] -> (n, size, size): bilinear upsampling to 16, average pooling down to 4."""
    x = images[:, None]
    if size > 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    elif size < 8:
        x = F.avg_pool2d(x, 8 // size)
    return x[:, 0]


def to_judge_size(images: torch.Tensor) -> torch.Tensor:
    """(n, s, s) in [0, 1] at any of 4, 8, 16 -> (n, 8, 8) for the judge (nearest upsampling, average pooling)."""
    size = images.shape[-1]
    x = images[:, None]
    if size < 8:
        x = F.interpolate(x, scale_factor=8 // size, mode="nearest")
    elif size > 8:
        x = F.avg_pool2d(x, size // 8)
    return x[:, 0]


@dataclass(frozen=True)
class GrowingTraining:
    steps_per_stage: int = 800  # at each resolution: the first half fades the new block in, the second settles
    batch: int = 64
    lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    seed: int = 0


def resolution_frechet(yardstick: Yardstick, samples: torch.Tensor, digits: Digits) -> tuple[float, float]:
    """Score samples (n, s, s) at their own resolution: the Frechet distance from the training digits brought to
    that resolution (both then mapped to 8x8 for the judge), and the test reference, the test digits' distance
    from them."""
    size = samples.shape[-1]
    train = yardstick.features(to_judge_size(digits_at(digits.train_images, size)))
    test = yardstick.features(to_judge_size(digits_at(digits.test_images, size)))
    return frechet_distance(yardstick.features(to_judge_size(samples[: len(test)])), train), frechet_distance(
        test, train
    )


def train_growing(pair: GrowingPair, images: torch.Tensor, t: GrowingTraining, *, progress: bool = False) -> dict:
    """Train at 4x4, then grow to 8x8 and 16x16, fading each new block in over half a stage.
    Real images are shown at the current resolution, blended during a fade-in exactly as the generator's are.
    After each stage, 600 samples are kept (to be scored). -> {"samples": {size: (600, s, s)}, "seconds"}."""
    device = next(pair.parameters()).device
    g, d = pair.generator, pair.discriminator
    g_opt = torch.optim.Adam(g.parameters(), lr=t.lr, betas=t.betas)
    d_opt = torch.optim.Adam(d.parameters(), lr=t.lr, betas=t.betas)
    rng = training_generator(t.seed)
    resolutions = pair.config.resolutions
    real_by_size = {s: to_signed(digits_at(images, s)).to(device) for s in resolutions}
    fixed_z = torch.randn(600, pair.config.noise, generator=rng).to(device)
    samples, start = {}, time.perf_counter()
    for stage, size in enumerate(resolutions):
        fade = t.steps_per_stage // 2 if stage > 0 else 0
        for step in tqdm(range(t.steps_per_stage), disable=not progress, leave=False, desc=f"{size}x{size}"):
            alpha = min(1.0, (step + 1) / fade) if fade else 1.0
            pick = torch.randint(0, len(images), (t.batch,), generator=rng).to(device)
            real = real_by_size[size][pick]
            if alpha < 1.0:  # the real images fade in the same way: the old resolution, upsampled
                coarse = F.interpolate(real_by_size[resolutions[stage - 1]][pick], scale_factor=2, mode="nearest")
                real = alpha * real + (1 - alpha) * coarse
            z = torch.randn(t.batch, pair.config.noise, generator=rng).to(device)
            fake = g(z, stage, alpha)
            d_loss = discriminator_loss(d(real, stage, alpha), d(fake.detach(), stage, alpha))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g_loss = generator_loss(d(fake, stage, alpha))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
        with torch.no_grad():
            samples[size] = to_unit(g(fixed_z, stage)).cpu()
    pair.eval()
    return {"samples": samples, "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Train lesson 09's experiment GANs and ship them.")
    parser.add_argument("command", choices=["ship"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    print(*ship(device=parser.parse_args().device), sep="\n")
