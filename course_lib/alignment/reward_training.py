"""Lessons 15-16, 18: training the reward model (course_lib.models.reward_model) on preferences with the Bradley-Terry
loss, -log sigmoid(r(chosen) - r(rejected)); lesson 16 scores its DPO policies with it.

By default (`train_embeddings=False`) the backbone is fine-tuned except its token and position embeddings, which
stay as lesson 05 learned them; lesson 15's weak reward model trains them too. The
weights kept are an exponential moving average of the trained ones (a variant of Polyak averaging). After
training, the scores are shifted and scaled so that training responses score mean 0 and standard deviation 1,
which makes one KL coefficient mean the same thing whatever the model learned.

The lesson's reward model (its recipe on the default preference recipe) ships with the repository: training it
takes about 3 minutes on 2 cores, more than lesson 15's budget, so on a CPU the lesson loads it, measures it on
the learner's own preference pairs and times a few real steps. `python -m course_lib.alignment.reward_training
ship` re-makes it from a cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from course_lib.alignment.preferences import PROMPT_CHARS, PreferenceRecipe, Preferences
from course_lib.artifacts import SHIPPED, config_hash, pretrained, ship_artifact
from course_lib.device import device_name, seeded
from course_lib.models.gpt import GPT
from course_lib.models.reward_model import RewardModel
from course_lib.train import Optimisation, TensorBatches, optimise


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean -log P(chosen preferred) under Bradley-Terry, P = sigmoid(r_chosen - r_rejected)."""
    return -F.logsigmoid(chosen - rejected).mean()


@torch.no_grad()
def scores(model: RewardModel, sequences: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The reward model's score of every sequence: (n, t) -> (n,)."""
    device = next(model.parameters()).device
    return torch.cat([model(part.to(device)).cpu() for part in sequences.split(batch)])


@torch.no_grad()
def pair_accuracy(model: RewardModel, data: Preferences, pairs: torch.Tensor) -> dict[str, float]:
    """Share of `pairs` the model orders as the annotator labelled them ("labels") and as the true reward orders
    them ("truth")."""
    chosen, rejected = data.sequences(pairs)
    right = scores(model, chosen) > scores(model, rejected)
    truth = data.agrees_with_truth(pairs)
    return {"labels": right.float().mean().item(), "truth": (right == truth).float().mean().item()}


def unseen_prompts(data: Preferences, record: dict) -> torch.Tensor:
    """(n,) True for the prompts of `data` that the reward model behind `record` did not train on: the prompts it
    recorded as held out (a shipped model's, split on another machine, where the same prompts may have been split
    otherwise), else `data`'s own held-out prompts."""
    if "test_prompts" not in record:
        return data.test
    unseen = torch.zeros(len(data.test), dtype=torch.bool)
    unseen[torch.tensor(record["test_prompts"], dtype=torch.long)] = True
    return unseen


def held_out_pairs(data: Preferences, record: dict) -> torch.Tensor:
    """The pairs of `data` whose prompt the reward model behind `record` did not train on (`unseen_prompts`)."""
    return data.pairs[unseen_prompts(data, record)[data.pairs[:, 0]]]


@dataclass(frozen=True, kw_only=True)
class RewardTraining(Optimisation):
    steps: int = 1200
    batch: int = 32  # prompts, each with all its responses
    lr: float = 1e-3
    warmup: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    decay_vectors: bool = False
    grad_clip: float | None = 1.0
    prompts: int | None = None  # train on the first this many training prompts (None: all of them)
    average: float = 0.995  # decay of the moving average of the weights that is kept (0: the last step's)
    train_embeddings: bool = False  # fine-tune the GPT's token and position embeddings too


def train_reward_model(model: RewardModel, data: Preferences, training: RewardTraining = RewardTraining()) -> dict:
    """Bradley-Terry training, then the score normalisation; -> the record to cache.

    As in InstructGPT, a batch is a set of prompts with all their responses: each response is scored once and
    every judged pair among them enters the loss.
    """
    t = training
    n, k = data.reward.shape
    prompts = torch.nonzero(~data.test).squeeze(1)[: t.prompts]
    wins = torch.zeros(n, k, k, dtype=torch.bool)  # wins[p, i, j]: response i was preferred to j
    pairs = data.split(test=False)
    pairs = pairs[torch.isin(pairs[:, 0], prompts)]
    wins[pairs[:, 0], pairs[:, 1], pairs[:, 2]] = True
    for embedding in (model.backbone.tok_emb, model.backbone.pos_emb):
        embedding.weight.requires_grad_(t.train_embeddings)
    device = next(model.parameters()).device
    if not 0 <= t.average < 1:
        raise ValueError(f"average is the moving average's decay, in [0, 1), got {t.average}")
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t.average))

    def loss_fn(m: RewardModel, batch: tuple[torch.Tensor]) -> torch.Tensor:
        index = batch[0].cpu()
        s = m(data.responses[index].flatten(0, 1).to(device)).view(len(index), k)  # (b, k) scores
        p, i, j = torch.nonzero(wins[index], as_tuple=True)
        return bradley_terry_loss(s[p, i], s[p, j])

    history = optimise(
        model,
        TensorBatches(prompts, batch_size=t.batch, seed=t.seed, drop_last=True),
        loss_fn,
        t,
        on_step=lambda m, step: average.update_parameters(m),
        desc="reward model",
    )
    if t.average > 0:
        model.load_state_dict(average.module.state_dict())
    raw = scores(model, data.responses[prompts[:1000]].flatten(0, 1))  # 4,000 training responses set the scale
    model.offset.fill_(raw.mean())
    model.scale.fill_(raw.std())
    test = pair_accuracy(model, data, data.split(test=True))
    return {
        "step_loss": history.step_loss,
        "seconds": history.seconds,
        "test_labels": test["labels"],
        "test_truth": test["truth"],
        "test_prompts": torch.nonzero(data.test).squeeze(1).tolist(),  # held out: never trained on (nor, with
        # `prompts` set, the training prompts past the first that many, which it skipped too)
    }


SHIPPED_RELEASE = 1  # raised when the shipped reward model is re-made, so an older one in a cache is not taken for it


def shipped_key(training: RewardTraining, backbone: GPT, alphabet: tuple[str, ...]) -> dict:
    """The cache key of the shipped reward model: its recipe, the preference recipe, the backbone's sizes and the
    alphabet, not the learner's GPT weights (the checkpoint was trained on the preference data of the machine that
    made it; lesson 15 measures it on yours)."""
    return {
        "release": SHIPPED_RELEASE,
        "preferences": asdict(PreferenceRecipe()),
        "backbone": asdict(backbone.config),
        "alphabet": "".join(alphabet),
        "reads": "word ends",
        **asdict(training),
    }


def pretrained_reward_model(
    backbone: GPT,
    data: Preferences,
    training: RewardTraining = RewardTraining(),
    device: torch.device | str = "cpu",
    *,
    use_shipped: bool | None = None,
) -> tuple[RewardModel, dict]:
    """Lesson 15's reward model -> (model, record). The lesson's recipe on the default preferences (and
    `use_shipped`, by default True on a machine without CUDA): from the cache, else the checkpoint the repository ships.
    Any other recipe, or `use_shipped=False`: from the cache, else trained now on `data` (about 3 minutes on 2
    cores for the lesson's). Measure it on `held_out_pairs(data, record)`."""
    if use_shipped is None:  # by the machine, not the device asked for: every caller on one machine agrees
        use_shipped = not torch.cuda.is_available()

    def build() -> RewardModel:
        with seeded(training.seed):
            return RewardModel(backbone, data.alphabet, PROMPT_CHARS)

    shipped = use_shipped and training == RewardTraining() and data.recipe == PreferenceRecipe()
    config = (
        shipped_key(training, backbone, data.alphabet)
        if shipped
        else {"data": data.key, "reads": "word ends", **asdict(training)}
    )
    name = "cheerful-reward-model" if training.prompts is None else f"cheerful-reward-model-{training.prompts}"
    model, record = pretrained(
        name,
        build,
        lambda m: train_reward_model(m, data, training),
        config,
        device=device,
        shipped=SHIPPED if shipped else None,
    )
    if shipped and "test_prompts" not in record:
        raise RuntimeError("the shipped reward model's record lacks its held-out prompts: re-make it with `ship`")
    model.key = f"{name}-{config_hash(config)}"  # what a policy trained against it names in its own config
    return model, record


def ship(backbone: GPT, data: Preferences, device: str = "cpu") -> Path:
    """The lesson's reward model from this machine's cache (trained on its own preference data; never the shipped
    one) or trained now, written to the folder of shipped checkpoints in float32. -> the weights' path."""
    model, record = pretrained_reward_model(backbone, data, device=device, use_shipped=False)
    if "test_prompts" not in record:  # a model cached before records kept their split
        record = {**record, "test_prompts": torch.nonzero(data.test).squeeze(1).tolist()}
    key = shipped_key(RewardTraining(), backbone, data.alphabet)
    return ship_artifact("cheerful-reward-model", key, model, record, device_name(device))


if __name__ == "__main__":
    import argparse

    from course_lib.alignment.preferences import preference_data
    from course_lib.text.language_model import pretrained_gpt

    parser = argparse.ArgumentParser(
        description="Train lesson 15's reward model (or take it from the cache) and ship it."
    )
    parser.add_argument("command", choices=["ship"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    device = parser.parse_args().device
    gpt, text, _ = pretrained_gpt(device=device, progress=False)
    print(ship(gpt, preference_data(gpt, text.train, text.tokenizer), device))
