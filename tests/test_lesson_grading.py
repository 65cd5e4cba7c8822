"""Lessons 01-16, 18: each common mistake loses points, in `check` and in the CLI grader; the solutions score full marks."""

import copy
import json

import pytest

from course_tools.grade import grade_folder
from course_tools.grading import registry
from course_tools.grading.feedback import check_messages
from course_tools.grading.notebook import exercise_meta, read_notebook
from tests.conftest import ROOT

NOTEBOOKS = [
    "01_seq2seq_attention",
    "02_attention",
    "03_transformer",
    "04_tokenization",
    "05_gpt",
    "06_decoding",
    "07_bert",
    "08_vae",
    "09_gan",
    "10_diffusion",
    "11_vit",
    "12_clip",
    "13_text_to_image",
    "15_rlhf",
    "16_dpo",
    "18_responsible",
]

# exercise id -> {mistake: source of a wrong function}
WRONG = {
    "additive_scores": {
        "no tanh": "def additive_scores(query, keys, w_query, w_key, v):\n"
        "    return ((query @ w_query)[:, None, :] + keys @ w_key) @ v\n",
    },
    "attention_context": {
        "mask applied after the softmax": "def attention_context(scores, keys, mask):\n"
        "    w = scores.softmax(-1) * mask\n    return torch.einsum('bs,bsd->bd', w, keys), w\n",
        "softmax over the batch": "def attention_context(scores, keys, mask):\n"
        "    w = scores.masked_fill(~mask, float('-inf')).softmax(0)\n    return torch.einsum('bs,bsd->bd', w, keys), w\n",
    },
    "sequence_loss": {
        "padding counted in the mean": "def sequence_loss(logits, targets, pad_id=0):\n"
        "    return -logits.log_softmax(-1).gather(-1, targets[..., None]).mean()\n",
    },
    "greedy_decode": {
        "keeps writing after EOS": "def greedy_decode(step, hidden, bos_id, eos_id, max_len, pad_id=0):\n"
        "    t = torch.full((hidden.shape[0],), bos_id)\n    out = []\n    done = torch.zeros(hidden.shape[0], dtype=torch.bool)\n"
        "    for _ in range(max_len):\n        logits, hidden = step(t, hidden)\n        t = logits.argmax(-1)\n"
        "        out.append(t)\n        done |= t == eos_id\n        if done.all():\n            break\n"
        "    return torch.stack(out, 1)\n",
        "always feeds BOS": "def greedy_decode(step, hidden, bos_id, eos_id, max_len, pad_id=0):\n"
        "    bos = torch.full((hidden.shape[0],), bos_id)\n    out = []\n    done = torch.zeros(hidden.shape[0], dtype=torch.bool)\n"
        "    for _ in range(max_len):\n        logits, hidden = step(bos, hidden)\n"
        "        t = logits.argmax(-1).masked_fill(done, pad_id)\n        out.append(t)\n        done |= t == eos_id\n"
        "        if done.all():\n            break\n    return torch.stack(out, 1)\n",
    },
    "scaled_dot_product_attention": {
        "no 1/sqrt(d) scaling": "def scaled_dot_product_attention(q, k, v, mask=None):\n    s = q @ k.transpose(-2, -1)\n"
        "    if mask is not None:\n        s = s.masked_fill(~mask, float('-inf'))\n    w = s.softmax(-1)\n    return w @ v, w\n",
        "mask applied after the softmax": "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)\n"
        "    if mask is not None:\n        w = w * mask\n    return w @ v, w\n",
        "uses PyTorch's fused kernel": "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None\n",
    },
    "padding_mask": {
        "off by one": "def padding_mask(lengths, max_len):\n"
        "    return (torch.arange(max_len)[None, :] <= lengths[:, None])[:, None, None, :]\n",
    },
    "causal_mask": {
        "diagonal excluded (off by one)": "def causal_mask(t):\n    return torch.ones(t, t, dtype=torch.bool).tril(-1)\n",
        "upper triangle (sees the future)": "def causal_mask(t):\n    return torch.ones(t, t, dtype=torch.bool).triu()\n",
    },
    "split_heads": {
        "(d h) instead of (h d)": "def split_heads(x, heads):\n    return rearrange(x, 'b t (d h) -> b h t d', h=heads)\n",
    },
    "merge_heads": {
        "heads merged in the wrong order": "def merge_heads(x):\n    return rearrange(x, 'b h t d -> b t (d h)')\n",
    },
    "multi_head_attention": {
        "one head only": "def multi_head_attention(x_q, x_kv, params, heads, mask=None):\n"
        "    lin = lambda x, n: x @ params[n + '.weight'].T + params[n + '.bias']\n"
        "    return lin(scaled_dot_product_attention(lin(x_q, 'q_proj'), lin(x_kv, 'k_proj'), lin(x_kv, 'v_proj'), mask)[0],"
        " 'out_proj')\n",
        "weights not transposed": "def multi_head_attention(x_q, x_kv, params, heads, mask=None):\n"
        "    lin = lambda x, n: x @ params[n + '.weight'] + params[n + '.bias']\n"
        "    q, k, v = (split_heads(lin(x, n), heads) for x, n in ((x_q, 'q_proj'), (x_kv, 'k_proj'), (x_kv, 'v_proj')))\n"
        "    return lin(merge_heads(scaled_dot_product_attention(q, k, v, mask)[0]), 'out_proj')\n",
    },
    "rotary_embedding": {
        "i instead of 2i in the exponent": "def rotary_embedding(x, base=10000.0):\n    t, d = x.shape[-2], x.shape[-1]\n"
        "    a = torch.arange(t)[:, None] * base ** (-torch.arange(d // 2) / d)\n    e, o = x[..., 0::2], x[..., 1::2]\n"
        "    return torch.stack([e * a.cos() - o * a.sin(), e * a.sin() + o * a.cos()], -1).flatten(-2)\n",
        "rotates halves, not pairs": "def rotary_embedding(x, base=10000.0):\n    t, d = x.shape[-2], x.shape[-1]\n"
        "    a = torch.arange(t)[:, None] * base ** (-torch.arange(0, d, 2) / d)\n    e, o = x[..., : d // 2], x[..., d // 2 :]\n"
        "    return torch.cat([e * a.cos() - o * a.sin(), e * a.sin() + o * a.cos()], -1)\n",
    },
    "label_smoothed_loss": {
        "padding counted": "def label_smoothed_loss(logits, targets, epsilon, pad_id=0):\n    lp = logits.log_softmax(-1)\n"
        "    nll = -lp.gather(-1, targets[..., None])[..., 0]\n    return ((1 - epsilon) * nll - epsilon * lp.mean(-1)).mean()\n",
        "smoothing spread over the wrong words only, with eps / (V - 1)": "def label_smoothed_loss(logits, targets, epsilon, "
        "pad_id=0):\n    lp = logits.log_softmax(-1)\n    V = lp.shape[-1]\n    nll = -lp.gather(-1, targets[..., None])[..., 0]\n"
        "    rest = (-lp.sum(-1) - nll) / (V - 1)\n    return ((1 - epsilon) * nll + epsilon * rest)[targets != pad_id].mean()\n",
    },
    "transformer_forward": {
        "source embeddings not scaled by sqrt(d)": (
            "transformer_forward",
            'params["src_embed.weight"][src] * math.sqrt(d)',
            'params["src_embed.weight"][src]',
        ),
        "source padding not masked in cross-attention": (
            "transformer_forward",
            'attend(x, memory, e + ".cross_attn", source_visible)',
            'attend(x, memory, e + ".cross_attn", torch.ones_like(source_visible))',
        ),
        "no causal mask": ("transformer_forward", "dtype=torch.bool, device=src.device).tril()", "dtype=torch.bool)"),
    },
    "most_frequent_pair": {
        "ties go to the first pair seen": "def most_frequent_pair(ids):\n    return Counter(zip(ids, ids[1:])).most_common(1)[0][0]\n",
        "overlaps not counted": "def most_frequent_pair(ids):\n    c = Counter(zip(ids[::2], ids[1::2]))\n"
        "    return min(c, key=lambda p: (-c[p], p))\n",
    },
    "merge": {
        "overlapping merges": "def merge(ids, pair, new_id):\n    out = []\n    for i, x in enumerate(ids):\n"
        "        if i + 1 < len(ids) and (x, ids[i + 1]) == tuple(pair):\n            out.append(new_id)\n"
        "        elif not (i > 0 and (ids[i - 1], x) == tuple(pair)):\n            out.append(x)\n    return out\n",
    },
    "train_merges": {
        "every merge gets id 256": "def train_merges(text, num_merges):\n    ids, merges = list(text.encode()), []\n"
        "    for i in range(num_merges):\n        if len(ids) < 2:\n            break\n"
        "        p = most_frequent_pair(ids)\n        merges.append(p)\n        ids = merge(ids, p, 256)\n    return merges\n",
    },
    "bpe_encode": {
        "merges the most frequent pair instead of the earliest learned": "def bpe_encode(text, merges):\n"
        "    rank = {tuple(p): i for i, p in enumerate(merges)}\n    ids = list(text.encode())\n"
        "    while len(ids) > 1:\n        c = Counter(p for p in zip(ids, ids[1:]) if p in rank)\n"
        "        if not c:\n            break\n        p = c.most_common(1)[0][0]\n        ids = merge(ids, p, 256 + rank[p])\n"
        "    return ids\n",
    },
    "causal_self_attention": {
        "no causal mask": "def causal_self_attention(x, w_qkv, w_proj, heads):\n"
        "    q, k, v = (rearrange(p, 'b t (h e) -> b h t e', h=heads) for p in (x @ w_qkv).chunk(3, -1))\n"
        "    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)\n"
        "    return rearrange(w @ v, 'b h t e -> b t (h e)') @ w_proj\n",
        "k, q, v order": "def causal_self_attention(x, w_qkv, w_proj, heads):\n    t = x.shape[1]\n"
        "    k, q, v = (rearrange(p, 'b t (h e) -> b h t e', h=heads) for p in (x @ w_qkv).chunk(3, -1))\n"
        "    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float('-inf'))\n"
        "    return rearrange(s.softmax(-1) @ v, 'b h t e -> b t (h e)') @ w_proj\n",
    },
    "gpt_forward": {
        "output layer not tied (head.weight ignored the same way)": (
            "gpt_forward",
            "@ embedding.T",
            "@ embedding.T * 0.5",
        ),
        "post-LN instead of pre-LN": (
            "gpt_forward",
            'x = x + linear(F.gelu(linear(norm(x, block + "ln2"), block + "mlp.0")), block + "mlp.2")',
            'x = norm(x + linear(F.gelu(linear(x, block + "mlp.0")), block + "mlp.2"), block + "ln2")',
        ),
        "no causal mask": ("gpt_forward", "masked_fill(hidden_future,", "masked_fill(hidden_future & False,"),
    },
    "next_token_loss": {
        "targets not shifted": "def next_token_loss(logits, idx):\n"
        "    return F.cross_entropy(logits.flatten(0, 1), idx.flatten())\n",
    },
    "sample_next": {
        "multiplies by the temperature": "def sample_next(logits, temperature, generator):\n"
        "    return torch.multinomial((logits * temperature).softmax(-1), 1, generator=generator)\n",
        "arg-max instead of sampling": "def sample_next(logits, temperature, generator):\n"
        "    return logits.argmax(-1, keepdim=True)\n",
    },
    "learning_rate": {
        "warm-up off by one (step / warmup)": "def learning_rate(step, warmup, total, peak, floor):\n"
        "    if step < warmup:\n        return peak * step / warmup\n"
        "    p = min(1.0, (step - warmup) / max(1, total - warmup))\n"
        "    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * p))\n",
    },
    "count_parameters": {
        "output layer counted twice (tying forgotten)": "def count_parameters(vocab_size, block_size, layers, d_model):\n"
        "    d = d_model\n    per = 4 * d + 3 * d * d + 3 * d + d * d + d + 8 * d * d + 5 * d\n"
        "    return 2 * vocab_size * d + block_size * d + layers * per + 2 * d\n",
    },
    "repetition_penalty": {
        "divides negative logits too (raises them)": "def repetition_penalty(logits, previous, penalty):\n"
        "    out = logits.clone()\n    for row in range(len(out)):\n        seen = previous[row].unique()\n"
        "        out[row, seen] = out[row, seen] / penalty\n    return out\n",
        "penalises once per occurrence": "def repetition_penalty(logits, previous, penalty):\n"
        "    out = logits.clone()\n    for row in range(len(out)):\n        for i in previous[row].tolist():\n"
        "            out[row, i] = out[row, i] / penalty if out[row, i] > 0 else out[row, i] * penalty\n    return out\n",
    },
    "min_p_filter": {
        "threshold not scaled by the top probability": "def min_p_filter(logits, p_base):\n"
        "    return logits.masked_fill(logits.softmax(-1) < p_base, float('-inf'))\n",
    },
    "beam_search": {
        "greedy (one beam)": ("beam_search", "topk(min(beams, candidates.numel()))", "topk(1)"),
        "scores not accumulated": (
            "beam_search",
            "candidates = totals[:, None] + next_log_probs(alive)",
            "candidates = next_log_probs(alive)",
        ),
    },
    "cached_attention": {
        "mask not shifted by the cache length": "def cached_attention(q, k_new, v_new, k_cache, v_cache):\n"
        "    k = torch.cat([k_cache, k_new], 2)\n    v = torch.cat([v_cache, v_new], 2)\n    s, t = q.shape[2], k.shape[2]\n"
        "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "    scores = scores.masked_fill(torch.ones(s, t, dtype=torch.bool).triu(1), float('-inf'))\n"
        "    return scores.softmax(-1) @ v, k, v\n",
        "new keys before the cache": "def cached_attention(q, k_new, v_new, k_cache, v_cache):\n"
        "    k = torch.cat([k_new, k_cache], 2)\n    v = torch.cat([v_new, v_cache], 2)\n    s, t = q.shape[2], k.shape[2]\n"
        "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "    scores = scores.masked_fill(torch.ones(s, t, dtype=torch.bool).triu(t - s + 1), float('-inf'))\n"
        "    return scores.softmax(-1) @ v, k, v\n",
    },
    "distinct_n": {
        "counts tokens, not n-grams": "def distinct_n(tokens, n):\n"
        "    return len(set(tokens)) / len(tokens) if len(tokens) >= n else 0.0\n",
    },
    "mask_tokens": {
        "masks every chosen position": "def mask_tokens(ids, mask_id, vocab_size, generator, p):\n"
        "    chosen = torch.rand(ids.shape, generator=generator) < p\n"
        "    return ids.masked_fill(chosen, mask_id), torch.where(chosen, ids, -100)\n",
        "labels at every position": "def mask_tokens(ids, mask_id, vocab_size, generator, p):\n"
        "    chosen = torch.rand(ids.shape, generator=generator) < p\n    action = torch.rand(ids.shape, generator=generator)\n"
        "    rnd = torch.randint(vocab_size, ids.shape, generator=generator)\n"
        "    x = torch.where(chosen & (action < 0.8), mask_id, ids)\n"
        "    x = torch.where(chosen & (action >= 0.8) & (action < 0.9), rnd, x)\n    return x, ids.clone()\n",
    },
    "mlm_loss": {
        "mean over all positions": "def mlm_loss(logits, labels):\n"
        "    lp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)\n"
        "    return -(lp * (labels != -100)).mean()\n",
    },
    "pooled_logits": {
        "padding in the mean": "def pooled_logits(hidden, pad_mask, weight, bias):\n"
        "    return hidden.mean(1) @ weight + bias\n",
        "first token (no pooling)": "def pooled_logits(hidden, pad_mask, weight, bias):\n"
        "    return hidden[:, 0] @ weight + bias\n",
    },
    "bert_encoder": {
        "padding read as keys": ("bert_encoder", "masked_fill(~readable,", "masked_fill(~readable & False,"),
        "post-LN instead of pre-LN": (
            "bert_encoder",
            'x = x + linear(F.relu(linear(norm(x, layer + "norm2"), layer + "ff.0")), layer + "ff.3")',
            'x = norm(x + linear(F.relu(linear(x, layer + "ff.0")), layer + "ff.3"), layer + "norm2")',
        ),
        "no final LayerNorm": ("bert_encoder", 'return norm(x, "ln_f")', "return x"),
    },
    "gaussian_log_density": {
        "sigma where sigma squared belongs": "def gaussian_log_density(z, mu, logvar):\n"
        "    return -0.5 * ((z - mu) ** 2 / (0.5 * logvar).exp() + logvar + math.log(2 * math.pi)).sum(-1)\n",
        "no 2 pi (an unnormalised density)": "def gaussian_log_density(z, mu, logvar):\n"
        "    return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar).sum(-1)\n",
        "mean over dimensions instead of sum": (
            "gaussian_log_density",
            "+ logvar + math.log(2 * math.pi)).sum(dim=-1)",
            "+ logvar + math.log(2 * math.pi)).mean(dim=-1)",
        ),
    },
    "gaussian_kl_between": {
        "KL(p || q), the other direction": "def gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p):\n"
        "    return ((logvar_p - logvar_q).exp() + (mu_q - mu_p) ** 2 / logvar_q.exp() - 1 - (logvar_p - logvar_q)) / 2\n",
        "the prior's formula with the means subtracted": "def gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p):\n"
        "    return ((mu_q - mu_p) ** 2 + logvar_q.exp() - logvar_q - 1) / 2\n",
        "shift not divided by the prior's variance": (
            "gaussian_kl_between",
            "shift = (mu_q - mu_p) ** 2 / logvar_p.exp()",
            "shift = (mu_q - mu_p) ** 2",
        ),
    },
    "discretised_logistic_log_likelihood": {
        "the log of a difference of sigmoids (-inf in the tails)": (
            "discretised_logistic_log_likelihood",
            "inside = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-inv_scale))",
            "inside = torch.log(torch.sigmoid(upper) - torch.sigmoid(lower))",
        ),
        "end bins computed as inner bins": (
            "discretised_logistic_log_likelihood",
            "log_p = torch.where(counts == 0, F.logsigmoid(upper),",
            "log_p = torch.where(counts == -1, F.logsigmoid(upper),",
        ),
        "end bins through log(sigmoid) (-inf far out)": (
            "discretised_logistic_log_likelihood",
            "log_p = torch.where(counts == 0, F.logsigmoid(upper),",
            "log_p = torch.where(counts == 0, torch.log(torch.sigmoid(upper)),",
        ),
        "the scale is log_scale itself": (
            "discretised_logistic_log_likelihood",
            "inv_scale = torch.exp(-log_scale)",
            "inv_scale = 1 / log_scale",
        ),
        "bins of width 2, [k - 1, k + 1]": (
            "discretised_logistic_log_likelihood",
            "lower = (counts - 0.5 - mu) * inv_scale",
            "lower = (counts - 1.0 - mu) * inv_scale\n    upper = (counts + 1.0 - mu) * inv_scale",
        ),
        "bins [k, k + 1] instead of [k - 1/2, k + 1/2]": (
            "discretised_logistic_log_likelihood",
            "upper = (counts + 0.5 - mu) * inv_scale",
            "upper = (counts + 1.0 - mu) * inv_scale",
        ),
        "mean over pixels instead of sum": (
            "discretised_logistic_log_likelihood",
            "log_p.sum(dim=-1)",
            "log_p.mean(dim=-1)",
        ),
        "the bin's width term left out": (
            "discretised_logistic_log_likelihood",
            " + torch.log(-torch.expm1(-inv_scale))",
            "",
        ),
        "stable in the left tail only": (
            "discretised_logistic_log_likelihood",
            "inside = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-inv_scale))",
            "inside = F.logsigmoid(upper) + torch.log(-torch.expm1(F.logsigmoid(lower) - F.logsigmoid(upper)))",
        ),
        "sigma(-l) through log(sigmoid) (-inf far right)": (
            "discretised_logistic_log_likelihood",
            "inside = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-inv_scale))",
            "inside = F.logsigmoid(upper) + torch.log(torch.sigmoid(-lower)) + torch.log(-torch.expm1(-inv_scale))",
        ),
        "end bins cut at 100 below 0 and above 16": (
            "discretised_logistic_log_likelihood",
            "log_p = torch.where(counts == 0, F.logsigmoid(upper),",
            "cut = lambda a, b: F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(b - a))  # noqa: E731\n"
            "    log_p = torch.where(counts == 0, cut(upper, (-100 - mu) * inv_scale),",
        ),
        "counts expanded to mu's shape (fails for one logistic per pixel)": (
            "discretised_logistic_log_likelihood",
            "inv_scale = torch.exp(-log_scale)",
            "counts = counts.expand_as(mu)\n    inv_scale = torch.exp(-log_scale)",
        ),
    },
    "iwae_curve": {
        "all N samples for every k": "def iwae_curve(log_weights, ks):\n"
        "    n = log_weights.shape[0]\n"
        "    return torch.stack([torch.logsumexp(log_weights, 0) - math.log(n) for k in ks])\n",
        "the mean of the logs for every k (the ELBO)": "def iwae_curve(log_weights, ks):\n"
        "    return torch.stack([log_weights.mean(0) for k in ks])\n",
        "strided groups (sample i in group i mod N // k)": (
            "iwae_curve",
            "groups = log_weights[: n // k * k].reshape(n // k, k, b)",
            "groups = log_weights[: n // k * k].reshape(k, n // k, b).transpose(0, 1)",
        ),
        "exp without the shift": (
            "iwae_curve",
            "group_bound = top.squeeze(1) + torch.log(torch.exp(groups - top).mean(dim=1))",
            "group_bound = torch.log(torch.exp(groups).mean(dim=1))",
        ),
        "one shift for the whole tensor, not per image": (
            "iwae_curve",
            "top = groups.max(dim=1, keepdim=True).values",
            "top = groups.max().expand(groups.shape[0], 1, groups.shape[2])",
        ),
        "sum instead of mean (no -log k)": (
            "iwae_curve",
            "group_bound = top.squeeze(1) + torch.log(torch.exp(groups - top).mean(dim=1))",
            "group_bound = top.squeeze(1) + torch.log(torch.exp(groups - top).sum(dim=1))",
        ),
    },
    "vae_forward": {
        "KL sign flipped": (
            "vae_forward",
            '"kl": gaussian_kl_between(mu, logvar, prior, prior).sum(dim=-1)',
            '"kl": -gaussian_kl_between(mu, logvar, prior, prior).sum(dim=-1)',
        ),
        "KL averaged over dimensions": (
            "vae_forward",
            '"kl": gaussian_kl_between(mu, logvar, prior, prior).sum(dim=-1)',
            '"kl": gaussian_kl_between(mu, logvar, prior, prior).mean(dim=-1)',
        ),
        "encoder reads raw counts": ("vae_forward", 'network(counts / 16, "encoder")', 'network(counts, "encoder")'),
        "no log-choose term in the reconstruction": (
            "vae_forward",
            "reconstruction = (log_choose + counts",
            "reconstruction = (counts",
        ),
    },
    "hinge_discriminator_loss": {
        "no max(0, .): logits pushed without end": "def hinge_discriminator_loss(real_logits, fake_logits):\n"
        "    return (1 - real_logits).mean() + (1 + fake_logits).mean()\n",
        "fake term with the wrong sign": (
            "hinge_discriminator_loss",
            "fake_short = torch.clamp(1 + fake_logits, min=0)",
            "fake_short = torch.clamp(1 - fake_logits, min=0)",
        ),
        "sum instead of mean": (
            "hinge_discriminator_loss",
            "return real_short.mean() + fake_short.mean()",
            "return real_short.sum() + fake_short.sum()",
        ),
    },
    "gradient_penalty": {
        "graph not kept (create_graph=False)": (
            "gradient_penalty",
            "(slope,) = torch.autograd.grad(logits.sum(), between, create_graph=True)",
            "(slope,) = torch.autograd.grad(logits.sum(), between)",
        ),
        "norm over the whole batch, not per image": (
            "gradient_penalty",
            "norms = slope.reshape(slope.shape[0], -1).norm(dim=1)",
            "norms = slope.norm()",
        ),
        "alpha on the fakes": (
            "gradient_penalty",
            "between = alpha * real + (1 - alpha) * fake",
            "between = (1 - alpha) * real + alpha * fake",
        ),
        "penalises the norm itself, not its distance to 1": (
            "gradient_penalty",
            "return ((norms - 1) ** 2).mean()",
            "return (norms**2).mean()",
        ),
    },
    "gan_training_step": {
        "generator trained on the discriminator's loss": (
            "gan_training_step",
            "loss_of_g = -discriminator(fakes, labels).mean()",
            "loss_of_g = hinge_discriminator_loss(discriminator(real, labels), discriminator(fakes, labels))",
        ),
        "penalty left out": (
            "gan_training_step",
            "    loss_of_d = loss_of_d + gp_weight * gradient_penalty(discriminator, real, held, labels, alpha)\n",
            "",
        ),
        "generator step through the old discriminator": "def gan_training_step(generator, discriminator, g_opt, d_opt, real, z, labels, alpha, gp_weight):\n"
        "    fakes = generator(z, labels)\n"
        "    old_logits = discriminator(fakes, labels)\n"
        "    loss_of_d = hinge_discriminator_loss(discriminator(real, labels), discriminator(fakes.detach(), labels))\n"
        "    loss_of_d = loss_of_d + gp_weight * gradient_penalty(discriminator, real, fakes.detach(), labels, alpha)\n"
        "    d_opt.zero_grad(); loss_of_d.backward(); d_opt.step()\n"
        "    loss_of_g = -old_logits.mean()\n"
        "    g_opt.zero_grad(); loss_of_g.backward(); g_opt.step()\n"
        "    return loss_of_d.item(), loss_of_g.item()\n",
        "fakes not detached in the discriminator's step": (
            "gan_training_step",
            "    held = fakes.detach()",
            "    held = fakes",
        ),
        "discriminator's gradients never zeroed": ("gan_training_step", "    d_opt.zero_grad()\n", ""),
        "generator's gradients never zeroed": ("gan_training_step", "    g_opt.zero_grad()\n", ""),
        "discriminator stepped again in the generator's step": (
            "gan_training_step",
            "    g_opt.zero_grad()\n    loss_of_g.backward()\n    g_opt.step()\n",
            "    g_opt.zero_grad()\n    d_opt.zero_grad()\n    loss_of_g.backward()\n    g_opt.step()\n    d_opt.step()\n",
        ),
    },
    "posterior": {
        "alpha_bar[t] where alpha_bar[t - 1] belongs": (
            "posterior",
            "bar_before = torch.cumprod(alphas, dim=0)[t - 1]",
            "bar_before = torch.cumprod(alphas, dim=0)[t]",
        ),
        "the forward step's variance beta_t": (
            "posterior",
            "    return mean, variance",
            "    return mean, betas[t]",
        ),
        "precisions not added (variances added instead)": (
            "posterior",
            "precision = alphas[t] / betas[t] + 1 / (1 - bar_before)",
            "precision = 1 / (betas[t] / alphas[t] + (1 - bar_before))",
        ),
    },
    "v_to_x0_and_eps": {
        "the two outputs swapped": ("v_to_x0_and_eps", "    return x0, eps", "    return eps, x0"),
        "sign of v in x0 flipped": (
            "v_to_x0_and_eps",
            "x0 = signal * x_t - noise_level * v",
            "x0 = signal * x_t + noise_level * v",
        ),
        "one level for the whole batch": (
            "v_to_x0_and_eps",
            "a = alpha_bar.reshape(-1, *[1] * (x_t.dim() - 1))",
            "a = alpha_bar[0]",
        ),
    },
    "ddim_step_eta": {
        "sigma without the 1 - abar_t / abar_prev factor": (
            "ddim_step_eta",
            " * math.sqrt(1 - alpha_bar_t / alpha_bar_prev)",
            "",
        ),
        "noise kept at sqrt(1 - abar_prev), ignoring sigma": (
            "ddim_step_eta",
            "kept_noise = math.sqrt(max(1 - alpha_bar_prev - sigma ** 2, 0.0))",
            "kept_noise = math.sqrt(1 - alpha_bar_prev)",
        ),
        "x0 not clipped": (
            "ddim_step_eta",
            "clean = torch.clamp((x_t - lose * eps) / keep, -1.0, 1.0)",
            "clean = (x_t - lose * eps) / keep",
        ),
    },
    "ddim_sample": {
        "guidance weight applied to the wrong term": (
            "ddim_sample",
            "eps = (1 + weight) * with_label - weight * without",
            "eps = (1 + weight) * without - weight * with_label",
        ),
        "last step stops at the smallest t instead of alpha_bar = 1": (
            "ddim_sample",
            "levels = [alpha_bars[t].item() for t in schedule] + [1.0]",
            "levels = [alpha_bars[t].item() for t in schedule] + [alpha_bars[0].item()]",
        ),
    },
    "resize_positions": {
        "the class token resized with the grid": "def resize_positions(positions, side):\n"
        "    g = math.isqrt(positions.shape[1] - 1)\n"
        "    out = F.interpolate(positions.transpose(1, 2), size=1 + side * side, mode='linear', align_corners=False)\n"
        "    return out.transpose(1, 2)\n",
        "rows and columns exchanged": (
            "resize_positions",
            '"one (rows cols) d -> one d rows cols"',
            '"one (rows cols) d -> one d cols rows"',
        ),
        "the other corner convention, not the one asked for": (
            "resize_positions",
            "align_corners=False",
            "align_corners=True",
        ),
    },
    "occlude_top_patches": {
        "the lowest scores blanked": (
            "occlude_top_patches",
            "scores.topk(k, dim=1).indices",
            "scores.topk(k, dim=1, largest=False).indices",
        ),
        "patches numbered column by column": (
            "occlude_top_patches",
            '"b (rows cols) -> b 1 rows 1 cols 1"',
            '"b (cols rows) -> b 1 rows 1 cols 1"',
        ),
        "the input blanked in place": "def occlude_top_patches(images, scores, k, patch):\n"
        "    cols = images.shape[-1] // patch\n"
        "    for i, top in enumerate(scores.topk(k, dim=1).indices.tolist()):\n"
        "        for j in top:\n"
        "            r, c = divmod(j, cols)\n"
        "            images[i, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0\n"
        "    return images\n",
        "rows and columns exchanged (the column count from the height)": (
            "occlude_top_patches",
            "rows, cols = height // patch, width // patch",
            "cols, rows = height // patch, width // patch",
        ),
        "scores marked in place (greedy argmax, then -inf)": "def occlude_top_patches(images, scores, k, patch):\n"
        "    out = images.clone()\n"
        "    cols = images.shape[-1] // patch\n"
        "    for i in range(len(images)):\n"
        "        for _ in range(k):\n"
        "            j = scores[i].argmax().item()\n"
        "            scores[i, j] = -float('inf')\n"
        "            r, c = divmod(j, cols)\n"
        "            out[i, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0\n"
        "    return out\n",
        "the input returned when k is 0": "def occlude_top_patches(images, scores, k, patch):\n"
        "    if k == 0:\n"
        "        return images\n"
        "    out = images.clone()\n"
        "    cols = images.shape[-1] // patch\n"
        "    for i, top in enumerate(scores.topk(k, dim=1).indices.tolist()):\n"
        "        for j in top:\n"
        "            r, c = divmod(j, cols)\n"
        "            out[i, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0\n"
        "    return out\n",
        "one channel only": "def occlude_top_patches(images, scores, k, patch):\n"
        "    out = images.clone()\n"
        "    cols = images.shape[-1] // patch\n"
        "    for i, top in enumerate(scores.topk(k, dim=1).indices.tolist()):\n"
        "        for j in top:\n"
        "            r, c = divmod(j, cols)\n"
        "            out[i, 0, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0\n"
        "    return out\n",
    },
    "vit_forward": {
        "attention not scaled by 1/sqrt(d_head)": ("vit_forward", " / math.sqrt(q.shape[-1])", ""),
        "heads split across the wrong axis": (
            "vit_forward",
            '"b t (h e) -> b h t e", h=heads',
            '"b t (e h) -> b h t e", h=heads',
        ),
        "reads the last token instead of the class token": (
            "vit_forward",
            'norm(x[:, 0], "norm")',
            'norm(x[:, -1], "norm")',
        ),
        "patches flattened in the wrong order (columns first)": (
            "vit_forward",
            '"b c (rows p) (cols q) -> b (rows cols) (p q c)"',
            '"b c (rows p) (cols q) -> b (cols rows) (p q c)"',
        ),
        "class token last": (
            "vit_forward",
            'torch.cat((cls, linear(cut, "patch_embedding")), dim=1)',
            'torch.cat((linear(cut, "patch_embedding"), cls), dim=1)',
        ),
    },
    "multi_positive_clip_loss": {
        "paraphrases treated as negatives (the lesson's loss)": "def multi_positive_clip_loss(images, texts, matches, log_scale):\n"
        "    logits = log_scale.exp() * images @ texts.T\n    right = torch.arange(len(images))\n"
        "    return (F.cross_entropy(logits, right) + F.cross_entropy(logits.T, right)) / 2\n",
        "columns normalised by the rows' counts": (
            "multi_positive_clip_loss",
            "m / m.sum(0, keepdim=True) * logits.log_softmax(dim=0)",
            "m / m.sum(1, keepdim=True) * logits.log_softmax(dim=0)",
        ),
        "one direction only": (
            "multi_positive_clip_loss",
            "return (image_to_text + text_to_image) / 2",
            "return image_to_text",
        ),
        "temperature applied inverted": (
            "multi_positive_clip_loss",
            "logits = log_scale.exp() * images @ texts.T",
            "logits = (-log_scale).exp() * images @ texts.T",
        ),
    },
    "zero_shot_logits": {
        "class means not renormalised": (
            "zero_shot_logits",
            "grouped = grouped / grouped.norm(dim=-1, keepdim=True)",
            "",
        ),
        "prompts grouped across classes": (
            "zero_shot_logits",
            "prompts.reshape(-1, per_class, prompts.shape[-1]).mean(dim=1)",
            "prompts.reshape(per_class, -1, prompts.shape[-1]).mean(dim=0)",
        ),
    },
    "recall_at_k": {
        "the k least similar": ("recall_at_k", "argsort(dim=1, descending=True)", "argsort(dim=1)"),
        "share of relevant in the top k": (
            "recall_at_k",
            "relevant[i, best[i]].any()",
            "relevant[i, best[i]].float().mean()",
        ),
    },
    "swap_words": {
        "relation: the objects exchanged instead": "def swap_words(caption, kind):\n"
        "    w = caption.split()\n"
        "    if kind == 'relation':\n"
        "        return ' '.join(['a', w[-2], w[-1]] + w[3:-3] + ['a', w[1], w[2]])\n"
        "    pool = {'colours': ('red', 'green', 'blue', 'yellow'), 'shapes': ('circle', 'square', 'triangle')}[kind]\n"
        "    i, j = [k for k, x in enumerate(w) if x in pool]\n"
        "    w[i], w[j] = w[j], w[i]\n"
        "    return ' '.join(w)\n",
        "colours swapped for shapes": (
            "swap_words",
            '{"colours": ("red", "green", "blue", "yellow"), "shapes"',
            '{"shapes": ("red", "green", "blue", "yellow"), "colours"',
        ),
    },
    "clip_step": {
        "text -> image softmax taken over texts": (
            "clip_step",
            "columns = F.cross_entropy(logits[:, :b].T, right)",
            "columns = F.cross_entropy(logits[:, :b], right)",
        ),
        "hard negatives dropped from the rows": (
            "clip_step",
            "rows = F.cross_entropy(logits, right)",
            "rows = F.cross_entropy(logits[:, :b], right)",
        ),
        "optimizer not stepped": ("clip_step", "    optimizer.step()\n", ""),
        "gradients never zeroed": ("clip_step", "    optimizer.zero_grad()\n", ""),
    },
    "prior_loss": {
        "predicts the noise (lesson 10's target)": (
            "prior_loss",
            "return ((prior(noisy, t, text) - image) ** 2).mean()",
            "return ((prior(noisy, t, text) - noise) ** 2).mean()",
        ),
        "alpha bar without the square roots": (
            "prior_loss",
            "keep.sqrt() * image + (1 - keep).sqrt() * noise",
            "keep * image + (1 - keep) * noise",
        ),
    },
    "prior_ddim_sample": {
        "the prediction used as the noise (lesson 10's sampler as it is)": (
            "prior_ddim_sample",
            "implied_noise = (z - math.sqrt(now) * z0) / math.sqrt(1 - now)",
            "implied_noise = z0",
        ),
        "last step not taken to alpha_bar 1": (
            "prior_ddim_sample",
            "if i + 1 < len(times) else 1.0",
            "if i + 1 < len(times) else now",
        ),
        "not scaled to unit length": ("prior_ddim_sample", "return z / z.norm(dim=-1, keepdim=True)", "return z"),
        "prediction not clipped": (
            "prior_ddim_sample",
            "prior(z, torch.full((z.shape[0],), t), text).clamp(-1, 1)",
            "prior(z, torch.full((z.shape[0],), t), text)",
        ),
    },
    "clip_rerank": {
        "candidates read as (k, n)": (
            "clip_rerank",
            "images = clip.encode_image(pictures).reshape(n, k, -1)           # (n, k, e)",
            "images = clip.encode_image(pictures).reshape(k, n, -1).transpose(0, 1)",
        ),
        "the worst candidate kept": ("clip_rerank", "best = scores.argmax(dim=1)", "best = scores.argmin(dim=1)"),
        "every candidate scored against caption 0": (
            "clip_rerank",
            "scores = (images * texts[:, None, :]).sum(dim=-1)",
            "scores = (images * texts[:1, None, :]).sum(dim=-1)",
        ),
    },
    "text_to_image": {
        "captions repeated as a block, not each k times": (
            "text_to_image",
            "clip.encode_text(tokens).repeat_interleave(k, dim=0)",
            "clip.encode_text(tokens).repeat(k, 1)",
        ),
        "decoder conditioned on the text embedding": (
            "text_to_image",
            "clip_rerank(clip, decode(embeddings, image_noise), tokens, k)",
            "clip_rerank(clip, decode(text, image_noise), tokens, k)",
        ),
        "the first candidate, not the best": (
            "text_to_image",
            "    best, _ = clip_rerank(clip, decode(embeddings, image_noise), tokens, k)\n    return best",
            "    return decode(embeddings, image_noise)[::k]",
        ),
    },
    "bradley_terry_loss": {
        "preference the wrong way": ("bradley_terry_loss", "margin = chosen - rejected", "margin = rejected - chosen"),
        "log of sigmoid (underflows)": (
            "bradley_terry_loss",
            "return F.softplus(-margin).mean()",
            "return -torch.log(torch.sigmoid(margin)).mean()",
        ),
    },
    "exact_kl": {
        "KL(reference || policy)": (
            "exact_kl",
            "torch.exp(log_policy) * (log_policy - log_ref)",
            "torch.exp(log_ref) * (log_ref - log_policy)",
        ),
        "logits not normalised": ("exact_kl", "log_ref = F.log_softmax(ref_logits, dim=-1)", "log_ref = ref_logits"),
    },
    "kl_shaped_rewards": {
        "KL sign flipped": ("kl_shaped_rewards", "beta * (ref_logprob - logprob)", "beta * (logprob - ref_logprob)"),
        "score on every token": ("kl_shaped_rewards", "last[:, -1] = score", "last[:] = score[:, None]"),
    },
    "gae": {
        "no bootstrap from the next value": ("gae", "rewards + gamma * next_values - values", "rewards - values"),
        "lambda ignored": ("gae", "carry = deltas[:, i] + gamma * lam * carry", "carry = deltas[:, i] + gamma * carry"),
    },
    "clipped_policy_loss": {
        "ratio taken the wrong way": (
            "clipped_policy_loss",
            "ratio = torch.exp(logprob - old_logprob)",
            "ratio = torch.exp(old_logprob - logprob)",
        ),
        "max instead of min": ("clipped_policy_loss", "unclipped < clipped", "unclipped > clipped"),
    },
    "ppo_update": {
        "advantages not normalised": ("ppo_update", "        adv = (adv - adv.mean()) / (adv.std() + 1e-8)\n", ""),
        "KL sign flipped": (
            "ppo_update",
            "kl_shaped_rewards(reward_model(sequences), old, picked(reference_logits), beta)",
            "kl_shaped_rewards(reward_model(sequences), old, picked(reference_logits), -beta)",
        ),
        "ratio against the reference, not the sampling policy": (
            "ppo_update",
            "clipped_policy_loss(picked(new_logits), old, adv, clip)",
            "clipped_policy_loss(picked(new_logits), picked(reference_logits), adv, clip)",
        ),
        "max for min in the clipped objective": (
            "ppo_update",
            "total = clipped_policy_loss(picked(new_logits), old, adv, clip)",
            "ratio = torch.exp(picked(new_logits) - old)\n"
            "        total = -torch.max(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv).mean()",
        ),
        "old log-probabilities taken afresh every epoch": (
            "ppo_update",
            "total = clipped_policy_loss(picked(new_logits), old, adv, clip)",
            "total = clipped_policy_loss(picked(new_logits), picked(new_logits).detach(), adv, clip)",
        ),
    },
    "dpo_loss": {
        "beta outside the sigmoid": (
            "dpo_loss",
            "F.softplus(-beta * (chosen_ratio - rejected_ratio)).mean()",
            "beta * F.softplus(-(chosen_ratio - rejected_ratio)).mean()",
        ),
        "reference subtracted the wrong way": (
            "dpo_loss",
            "chosen_ratio = chosen - ref_chosen",
            "chosen_ratio = ref_chosen - chosen",
        ),
    },
    "sequence_logprob": {
        "positions off by one": (
            "sequence_logprob",
            "model(sequences)[0][:, prompt_len - 1 : -1]",
            "model(sequences)[0][:, prompt_len:]",
        ),
        "mean instead of sum": ("sequence_logprob", ".squeeze(-1).sum(dim=1)", ".squeeze(-1).mean(dim=1)"),
    },
    "implicit_reward_accuracy": {
        "ties counted as wrong": (
            "implicit_reward_accuracy",
            "torch.where(margin < 0, 0.0, 0.5)",
            "torch.where(margin < 0, 0.0, 0.0)",
        ),
        "reference ignored": (
            "implicit_reward_accuracy",
            "margin = beta * (chosen - ref_chosen) - beta * (rejected - ref_rejected)",
            "margin = beta * chosen - beta * rejected",
        ),
    },
    "dpo_step": {
        "optimizer not stepped": ("dpo_step", "    optimizer.step()\n", ""),
        "chosen and rejected swapped": (
            "dpo_step",
            "dpo_loss(current[0], current[1], frozen[0], frozen[1], beta)",
            "dpo_loss(current[1], current[0], frozen[1], frozen[0], beta)",
        ),
    },
    "unique_pair_z": {
        "every pair counted, repeats included": (
            "unique_pair_z",
            "codes = torch.unique(row[:-1] * vocab + row[1:])",
            "codes = row[:-1] * vocab + row[1:]",
        ),
        "T taken as the row's length": (
            "unique_pair_z",
            "n = codes.numel()",
            "n = row.numel()",
        ),
        "pairs read as (current, previous)": (
            "unique_pair_z",
            "codes = torch.unique(row[:-1] * vocab + row[1:])",
            "codes = torch.unique(row[1:] * vocab + row[:-1])",
        ),
    },
    "rank_auc": {
        "ties count as losses": (
            "rank_auc",
            "mid = top - (sizes.to(torch.float64) - 1) / 2",
            "mid = top - (sizes - 1)",
        ),
        "negatives ranked instead of positives": (
            "rank_auc",
            "rank_sum = mid[where][: positive.numel()].sum()",
            "rank_sum = mid[where][positive.numel() :].sum()",
        ),
    },
    "extrapolated_exposure": {
        "1 - cdf, which rounds to 0 far out": (
            "extrapolated_exposure",
            "log_tail = torch.special.log_ndtr(-standardised)",
            "log_tail = torch.log(1 - torch.special.ndtr(standardised))",
        ),
        "the wrong tail": (
            "extrapolated_exposure",
            "log_tail = torch.special.log_ndtr(-standardised)",
            "log_tail = torch.special.log_ndtr(standardised)",
        ),
        "natural log, not bits": ("extrapolated_exposure", "-log_tail / math.log(2.0)", "-log_tail"),
    },
    "near_duplicate_pairs": {
        "word n-grams": (
            "near_duplicate_pairs",
            "set(text[k : k + n] for k in range(max(len(text) - n + 1, 0)))",
            "set(tuple(text.split()[k : k + n]) for k in range(max(len(text.split()) - n + 1, 0)))",
        ),
        "the last n-gram dropped": (
            "near_duplicate_pairs",
            "range(max(len(text) - n + 1, 0))",
            "range(max(len(text) - n, 0))",
        ),
        "overlap coefficient for Jaccard": (
            "near_duplicate_pairs",
            "len(a & b) >= threshold * len(a | b)",
            "len(a & b) >= threshold * min(len(a), len(b))",
        ),
        "a strict > for >=": (
            "near_duplicate_pairs",
            "len(a & b) >= threshold * len(a | b)",
            "len(a & b) > threshold * len(a | b)",
        ),
        "two empty sets count as the same": (
            "near_duplicate_pairs",
            "if a and b and len(a & b) >= threshold * len(a | b):",
            "if (len(a & b) / len(a | b) if a | b else 1.0) >= threshold:",
        ),
    },
    "detector_logits": {
        "pixels not mapped to [-1, 1]": (
            "detector_logits",
            "h = images.unsqueeze(1) * 2.0 - 1.0",
            "h = images.unsqueeze(1)",
        ),
        "no ReLU after the second convolution": (
            "detector_logits",
            'state["conv2.bias"], stride=2, padding=1).relu()',
            'state["conv2.bias"], stride=2, padding=1)',
        ),
        "squeeze drops the batch of one": (
            "detector_logits",
            '+ state["head.bias"]).reshape(-1)',
            '+ state["head.bias"]).squeeze()',
        ),
    },
    "nearest": {
        "dot product without normalising": "def nearest(queries, keys, k):\n"
        "    return (queries @ keys.T).topk(k, dim=-1)\n",
        "uses F.cosine_similarity": "def nearest(queries, keys, k):\n"
        "    return F.cosine_similarity(queries[:, None], keys[None], dim=-1).topk(k, dim=-1)\n",
    },
}


def solution_source(exercise_id):
    exercise = registry.get(exercise_id)
    nb = read_notebook(ROOT / "solutions" / f"{exercise.notebook}.ipynb")
    return next("".join(c["source"]) for c in nb["cells"] if (exercise_meta(c) or {}).get("id") == exercise_id)


def wrong_source(exercise_id, mistake):
    """A wrong variant: written out, or (exercise, old, new), one edit of the solution's own code."""
    variant = WRONG[exercise_id][mistake]
    if isinstance(variant, str):
        return variant
    _, old, new = variant
    source = solution_source(exercise_id)
    assert source.count(old) == 1, (exercise_id, mistake, old)
    return source.replace(old, new)


def define(exercise_id, source):
    exercise = registry.get(exercise_id)
    namespace = {}
    exec(exercise.setup, namespace)
    for other in registry.for_notebook(exercise.notebook):
        if other.id != exercise_id:
            namespace[other.function] = other.reference
    exec(source, namespace)
    return namespace[exercise.function], source


def test_every_lesson_exercise_from_01_has_wrong_variants():
    ids = {e.id for stem in NOTEBOOKS for e in registry.for_notebook(stem)}
    assert len(ids) >= 32 and ids == set(WRONG)


def test_label_smoothed_loss_agrees_with_pytorch():
    import torch

    logits, targets = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5))
    ours = registry.get("label_smoothed_loss").reference(logits, targets, 0.2, pad_id=2)
    theirs = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=2, label_smoothing=0.2
    )
    torch.testing.assert_close(ours, theirs)


def test_references_agree_with_independent_implementations():
    """The values the checks expect come from each spec's reference; here a dozen of them are held against code
    that shares nothing with them (PyTorch's own functions and distributions), as lesson 00's are in
    tests/test_check.py."""
    import torch
    import torch.nn.functional as F
    from torch.distributions import Categorical, Normal, kl_divergence

    def ref(name):
        return registry.get(name).reference

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    mask = torch.rand(2, 1, 5, 5, generator=g) > 0.3
    mask[..., 0] = True  # every query sees a key
    out, _ = ref("scaled_dot_product_attention")(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.equal(ref("causal_mask")(6), torch.ones(6, 6).tril().bool())
    lengths = torch.tensor([1, 4, 2])
    expected = (torch.arange(5) < lengths[:, None])[:, None, None, :]
    assert torch.equal(ref("padding_mask")(lengths, 5), expected)

    z, mu, logvar, mu_p, logvar_p = (torch.randn(4, 6, generator=g) for _ in range(5))
    normal = Normal(mu, (0.5 * logvar).exp())
    torch.testing.assert_close(ref("gaussian_log_density")(z, mu, logvar), normal.log_prob(z).sum(-1))
    torch.testing.assert_close(
        ref("gaussian_kl_between")(mu, logvar, mu_p, logvar_p),
        kl_divergence(normal, Normal(mu_p, (0.5 * logvar_p).exp())),
    )

    def logistic_mass(c, m, s):  # float64 differences of CDFs, each taken on the side of the location it lies
        up, low = (c + 0.5 - m) / s, (c - 0.5 - m) / s  # the bin's edges, standardised
        first, last = torch.sigmoid(up), torch.sigmoid(-low)  # the end bins' masses
        inner = torch.where(c > m, torch.sigmoid(-low) - torch.sigmoid(-up), torch.sigmoid(up) - torch.sigmoid(low))
        return torch.where(c == 0, first, torch.where(c == 16, last, inner))

    counts, mu = torch.randint(0, 17, (4, 64), generator=g).double(), 16 * torch.rand(4, 64, generator=g).double()
    log_scale = 0.5 * torch.randn(4, 64, generator=g).double()
    far_counts = torch.tensor([[8.0], [3.0], [12.0], [0.0], [16.0], [8.0]]).double()  # 40-150 scales out, both sides
    far_mu = torch.tensor([[-40.0], [150.0], [160.0], [150.0], [-150.0], [-142.0]]).double()
    for c, m, ls in ((counts, mu, log_scale), (far_counts, far_mu, torch.zeros(6, 1).double())):
        torch.testing.assert_close(
            ref("discretised_logistic_log_likelihood")(c.float(), m.float(), ls.float()),
            torch.log(logistic_mass(c, m, ls.exp())).sum(-1).float(),
        )

    logits, ref_logits = torch.randn(3, 7, 11, generator=g), torch.randn(3, 7, 11, generator=g)
    per_token = kl_divergence(Categorical(logits=logits), Categorical(logits=ref_logits))  # (3, 7)
    kl = ref("exact_kl")(logits, ref_logits)
    torch.testing.assert_close(kl, per_token if kl.shape == per_token.shape else per_token.sum(-1))
    chosen, rejected = torch.randn(8, generator=g), torch.randn(8, generator=g)
    torch.testing.assert_close(ref("bradley_terry_loss")(chosen, rejected), -F.logsigmoid(chosen - rejected).mean())
    ref_c, ref_r = torch.randn(8, generator=g), torch.randn(8, generator=g)
    torch.testing.assert_close(
        ref("dpo_loss")(chosen, rejected, ref_c, ref_r, 0.3),
        -F.logsigmoid(0.3 * ((chosen - ref_c) - (rejected - ref_r))).mean(),
    )

    logits, targets = torch.randn(3, 5, 9, generator=g), torch.randint(0, 9, (3, 5), generator=g)
    torch.testing.assert_close(
        ref("sequence_loss")(logits, targets, pad_id=2),
        F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=2),
    )
    torch.testing.assert_close(
        ref("next_token_loss")(logits, targets),
        F.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten()),
    )


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_each_reference_runs_clean_through_its_own_cases(stem):
    """A harness test, not a test of the references' values (those come from the references themselves; see
    the test above, lesson 00's in tests/test_check.py and the solutions' full marks from the grader): every case
    runs, no tolerance is tighter than the reference's own noise, no check depends on state a case leaves."""
    for exercise in registry.for_notebook(stem):
        lines = check_messages(exercise.id, exercise.reference)
        assert lines[0].startswith("✓"), lines


@pytest.mark.parametrize("exercise_id,mistake", [(e, m) for e, ms in WRONG.items() for m in ms])
def test_check_catches_the_common_mistake(exercise_id, mistake):
    fn, source = define(exercise_id, wrong_source(exercise_id, mistake))
    from course_tools.grading.execute import forbidden_uses

    lines = check_messages(exercise_id, fn)
    banned = forbidden_uses(source, registry.get(exercise_id).forbidden)
    assert banned or not lines[0].startswith("✓"), (mistake, lines)


def test_grader_gives_full_marks_to_solutions_and_takes_points_for_each_mistake(tmp_path):
    """One student per notebook with every exercise wrong in its first way; solutions get full marks."""
    subs = tmp_path / "subs"
    for stem in NOTEBOOKS:
        solution = read_notebook(ROOT / "solutions" / f"{stem}.ipynb")
        (subs / "solution").mkdir(parents=True, exist_ok=True)
        (subs / "solution" / f"{stem}.ipynb").write_text(json.dumps(solution))
        wrong = copy.deepcopy(solution)
        for cell in wrong["cells"]:
            meta = exercise_meta(cell)
            if meta:
                cell["source"] = wrong_source(meta["id"], next(iter(WRONG[meta["id"]])))
        (subs / "wrong").mkdir(parents=True, exist_ok=True)
        (subs / "wrong" / f"{stem}.ipynb").write_text(json.dumps(wrong))
    grades, _, alone = grade_folder(subs, seed=7, timeout=30, jobs=2)
    for stem in NOTEBOOKS:
        full = sum(e.points for e in registry.for_notebook(stem))
        assert sum(s.points for s in grades["solution"][stem].values()) == full, grades["solution"][stem]
        for exercise_id, result in grades["wrong"][stem].items():
            assert result.points < registry.get(exercise_id).points, (exercise_id, result)
    assert alone == 0  # no bundle left an exercise unsettled: no harness trips over another exercise's trap


def test_references_computed_in_parallel_threads_stay_correct():
    """The grader computes references in worker threads; seeded harnesses must not interleave their draws."""
    from concurrent.futures import ThreadPoolExecutor

    from course_tools.grade import Grader
    from course_tools.grading.spec import compare

    exercises = [registry.get("transformer_forward"), registry.get("gpt_forward")] * 4
    for seed in range(3):
        grader = Grader(seed=seed, timeout=30)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(grader.expected, exercises))
        for exercise in exercises[:2]:
            alone = Grader(seed=seed, timeout=30).expected(exercise)
            for a, b in zip(grader.expected(exercise), alone):
                assert compare(b.value, a.value, atol=0, rtol=0) is None
