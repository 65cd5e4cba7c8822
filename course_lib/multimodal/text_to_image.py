"""Lessons 13, 18: text-to-image as DALL-E 2 (Ramesh et al. 2022) does it, in miniature: CLIP's text encoder, a prior
that turns a caption's text embedding into an image embedding, and a diffusion decoder (lesson 10's U-Net on
16x16 colour images) that draws an image from an image embedding, with classifier-free guidance.

The prior is itself a small diffusion model over 64-number embeddings that, like DALL-E 2's, predicts the clean
embedding x_0 (not the noise) from (x_t, t, text embedding).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.artifacts import SHIPPED, pretrained, ship_artifact, weights_digest
from course_lib.data.shapes import SIDE, VERSION, make_shapes
from course_lib.device import device_name, seeded
from course_lib.models.prior import Prior
from course_lib.models.unet import UNet, UNetConfig
from course_lib.multimodal.clip_training import clip_key, embed_images, embed_texts, pretrained_clip
from course_lib.train import Optimisation, TensorBatches, optimise
from course_lib.vision.diffusion import (
    DiffusionTraining,
    Schedule,
    cosine_schedule,
    ddim_step,
    ddim_times,
    q_sample,
    sample,
    train_diffusion,
)

CLIP_KIND = "hard-negatives"


@dataclass(frozen=True)
class DecoderRecipe:
    model: UNetConfig = field(
        default_factory=lambda: UNetConfig(steps=200, width=32, channels=3, cond=64, coordinates=True, cond_scale=8.0)
    )
    train: DiffusionTraining = field(default_factory=lambda: DiffusionTraining(steps=4000, batch=64, drop_label=0.1))
    examples: int = 20_000
    clip: str = CLIP_KIND
    data: str = VERSION


DECODER = DecoderRecipe()


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """(b, 3, s, s) in [0, 1] -> [-1, 1]."""
    return images * 2 - 1


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) / 2).clamp(0, 1)


def pretrained_decoder(
    *, device: torch.device | str = "cpu", progress: bool = False, use_shipped: bool = True, retrain: bool = False
) -> tuple[UNet, dict]:
    """The decoder: a U-Net conditioned on CLIP image embeddings (dropped 10% of the time). From the cache, else
    (if `use_shipped`) the checkpoint the repository ships, else trained now (3-11 minutes on 2 cores). Its key
    holds the digest of the CLIP it was trained on, so it is never loaded beside another CLIP."""
    clip, _ = pretrained_clip(DECODER.clip, device=device, use_shipped=use_shipped)

    def build() -> UNet:
        with seeded(DECODER.train.seed):
            return UNet(DECODER.model)

    def fit(model: UNet) -> dict:
        data = make_shapes(DECODER.examples, "train")
        embeddings = embed_images(clip, data.images)
        schedule = cosine_schedule(DECODER.model.steps)
        return train_diffusion(model, schedule, to_signed(data.images), embeddings, DECODER.train, progress=progress)

    config = {**asdict(DECODER), "clip_weights": weights_digest(clip)}
    shipped = SHIPPED if use_shipped else None
    return pretrained("shapes-decoder", build, fit, config, device=device, retrain=retrain, shipped=shipped)


def decode(
    decoder: UNet,
    embeddings: torch.Tensor,
    *,
    guidance: float = 3.0,
    ddim_steps: int = 25,
    seed: int = 0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Embeddings (n, 64) -> images (n, 3, 16, 16) in [0, 1], DDIM with classifier-free guidance."""
    schedule = cosine_schedule(decoder.config.steps)
    shape = (len(embeddings), 3, SIDE, SIDE)
    x = sample(
        decoder, shape, schedule, labels=embeddings, guidance=guidance, ddim_steps=ddim_steps, seed=seed, noise=noise
    )
    return to_unit(x)


# --- the prior ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PriorTraining(Optimisation):
    steps: int = 3000
    batch: int = 256
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.02  # cosine decay to lr / 50


@dataclass(frozen=True)
class PriorRecipe:
    width: int = 256
    diffusion_steps: int = 100
    train: PriorTraining = field(default_factory=PriorTraining)
    examples: int = 20_000
    clip: str = CLIP_KIND
    data: str = VERSION


PRIOR = PriorRecipe()


def prior_loss(prior: Prior, image: torch.Tensor, text: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """DALL-E 2's prior objective: noise the image embedding to a random t, predict the clean one, squared error."""
    t = torch.randint(0, schedule.steps, (len(image),), device=image.device)
    x_t = q_sample(image, t, torch.randn_like(image), schedule)
    return F.mse_loss(prior(x_t, t, text), image)


def pretrained_prior(*, device: torch.device | str = "cpu", use_shipped: bool = True) -> tuple[Prior, dict]:
    """The prior, trained on (text embedding, image embedding) pairs of the training captions (20-30 s on 2
    cores), cached; `use_shipped` says which CLIP, as for the decoder."""
    clip, _ = pretrained_clip(PRIOR.clip, device=device, use_shipped=use_shipped)

    def build() -> Prior:
        with seeded(PRIOR.train.seed):
            return Prior(width=PRIOR.width, steps=PRIOR.diffusion_steps)

    def fit(model: Prior) -> dict:
        data = make_shapes(PRIOR.examples, "train")
        images, texts = embed_images(clip, data.images), embed_texts(clip, data.captions)
        schedule = cosine_schedule(PRIOR.diffusion_steps)
        t = PRIOR.train

        def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            return prior_loss(m, batch[0], batch[1], schedule)

        with seeded(t.seed):
            history = optimise(
                model,
                TensorBatches(images, texts, batch_size=t.batch, seed=t.seed, drop_last=True),
                loss,
                t,
                device=next(model.parameters()).device,
                progress=False,
            )
        return {"step_loss": history.step_loss, "seconds": history.seconds}

    config = {**asdict(PRIOR), "clip_weights": weights_digest(clip)}
    return pretrained("shapes-prior", build, fit, config, device=device)


@torch.no_grad()
def prior_sample(
    prior: Prior, text: torch.Tensor, *, ddim_steps: int = 25, seed: int = 0, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Text embeddings (n, e) -> image embeddings (n, e), unit length: DDIM from noise, the network's x_0
    prediction turned into the noise it implies at each step."""
    schedule = cosine_schedule(prior.steps)
    device = next(prior.parameters()).device
    text = text.to(device)
    x = (torch.randn(text.shape, generator=torch.Generator().manual_seed(seed)) if noise is None else noise).to(device)
    bars = schedule.alpha_bars.tolist()
    times = ddim_times(prior.steps, ddim_steps)
    for i, t in enumerate(times):
        x0 = prior(x, torch.full((len(x),), t, device=device), text)
        eps = (x - math.sqrt(bars[t]) * x0) / math.sqrt(1 - bars[t])
        x = ddim_step(x, eps, bars[t], bars[times[i + 1]] if i + 1 < len(times) else 1.0)
    return F.normalize(x, dim=-1).cpu()


def ship(device: str = "cpu") -> list:
    """Lesson 12's hard-negative CLIP and lesson 13's decoder trained on it, from this machine's cache (never the
    shipped pair) or trained now, written to the folder of shipped checkpoints in float32 (the decoder must meet
    exactly the CLIP weights it was trained on). -> the weights' paths."""
    made_on = device_name(device)
    clip, clip_record = pretrained_clip(DECODER.clip, device=device, use_shipped=False)
    decoder, decoder_record = pretrained_decoder(device=device, use_shipped=False)
    return [
        ship_artifact(f"shapes-clip-{DECODER.clip}", clip_key(DECODER.clip), clip, clip_record, made_on),
        ship_artifact(
            "shapes-decoder",
            {**asdict(DECODER), "clip_weights": weights_digest(clip)},
            decoder,
            decoder_record,
            made_on,
        ),
    ]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Train lesson 12's hard-negative CLIP and lesson 13's decoder and ship them."
    )
    parser.add_argument("command", choices=["ship"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    print(*ship(parser.parse_args().device), sep="\n")
