"""Score a language model on the bundled tasks: ranked-classification accuracy, bits-per-byte of the gold
answer, LAMBADA and clean-reference bits-per-byte, each with a bootstrap 95% interval.

Every choice is a (context, continuation) request; the model's log-probability of the continuation's
tokens given the context is summed (windows of at most `seq_len` tokens, each target scored once with as
much left context as fits). Accuracy ranks choices by that sum divided by the continuation's length in
characters ("per-character" normalization, OLMo's `acc_per_char`): unnormalized sums favour short
answers, per-token ones depend on the tokenizer. Bits-per-byte = -sum log2 p / UTF-8 bytes, over all
items of a task (a ratio of sums, so long answers weigh by their length); it does not depend on the
tokenizer, so models with different vocabularies compare. Requests run in batches of similar length
(sorted), so padding costs little; the results do not depend on the batch size beyond float rounding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from curate.core.errors import CurateError
from curate.core.files import join, read_bytes
from curate.core.tokenizer import eos_id_of
from curate.core.tokenizer import load as load_tokenizer
from curate.shards import read_manifest
from curate.train import checkpoint as C
from curate.train import tasks as T
from curate.train.model import GPT
from curate.train.presets import ModelConfig
from curate.versions import resolve_data

BOOTSTRAP_SAMPLES = 1000
LN2 = math.log(2)
Logits = Callable[[torch.Tensor], torch.Tensor]  # token ids (B, T) -> logits (B, T, V)


@dataclass(frozen=True)
class Window:
    """One forward row: `inputs` whose last `len(targets)` positions predict `targets` (of request owner)."""

    owner: int
    inputs: list[int]
    targets: list[int]


def windows(owner: int, context: list[int], continuation: list[int], seq_len: int) -> list[Window]:
    """Rows that score every continuation token once, each with the longest left context that fits."""
    full = context + continuation
    rows, start = [], len(context)
    while start < len(full):
        end = min(start + seq_len, len(full))
        begin = max(0, end - 1 - seq_len)
        rows.append(Window(owner, full[begin : end - 1], full[start:end]))
        start = end
    return rows


@torch.no_grad()
def continuation_logprobs(
    logits_of: Logits,
    requests: Sequence[tuple[list[int], list[int]]],
    seq_len: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Sum of log p (nats) of each request's continuation tokens given its context."""
    rows = [row for owner, (ctx, cont) in enumerate(requests) for row in windows(owner, ctx, cont, seq_len)]
    rows.sort(key=lambda row: len(row.inputs))
    totals = np.zeros(len(requests), dtype=np.float64)
    for first in range(0, len(rows), batch_size):
        batch = rows[first : first + batch_size]
        width = max(len(row.inputs) for row in batch)
        idx = torch.zeros(len(batch), width, dtype=torch.long)
        targets = torch.zeros(len(batch), width, dtype=torch.long)
        scored = torch.zeros(len(batch), width, dtype=torch.bool)  # positions whose next token is a target
        for i, row in enumerate(batch):
            n, end = len(row.targets), len(row.inputs)
            idx[i, :end] = torch.tensor(row.inputs)
            targets[i, end - n : end] = torch.tensor(row.targets)
            scored[i, end - n : end] = True
        logits = logits_of(idx.to(device)).float()  # (B, T, V)
        logp = torch.log_softmax(logits, dim=-1).gather(2, targets.to(device)[..., None])[..., 0]  # (B, T)
        per_row = (logp * scored.to(device)).sum(1).double().cpu().numpy()
        for row, value in zip(batch, per_row, strict=True):
            totals[row.owner] += value
    return totals


@dataclass
class TaskScores:
    """Per-item values of one task, kept so ablations can resample items paired across models."""

    task: str
    correct: list[int] = field(default_factory=list)  # per item; empty for bits-per-byte-only tasks
    gold_nats: list[float] = field(default_factory=list)  # -log p of the gold continuation
    gold_bytes: list[int] = field(default_factory=list)

    def summary(self, samples: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
        nats, nbytes = np.array(self.gold_nats), np.array(self.gold_bytes, dtype=np.float64)
        out: dict[str, Any] = {"items": len(nats), "bpb": bits_per_byte(nats, nbytes)}
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(nats), size=(samples, len(nats)))
        out["bpb_ci"] = _interval(nats[picks].sum(1) / nbytes[picks].sum(1) / LN2)
        if self.correct:
            correct = np.array(self.correct, dtype=np.float64)
            out["acc"] = float(correct.mean())
            out["acc_ci"] = _interval(correct[picks].mean(1))
        return out


def bits_per_byte(nats: np.ndarray, nbytes: np.ndarray) -> float:
    return float(nats.sum() / nbytes.sum() / LN2)


def _interval(samples: np.ndarray) -> list[float]:
    low, high = np.percentile(samples, [2.5, 97.5])
    return [float(low), float(high)]


def score_items(
    items: Sequence[T.Item],
    logits_of: Logits,
    tokenizer: Tokenizer,
    eos_id: int,
    seq_len: int,
    batch_size: int = 32,
    device: torch.device | None = None,
) -> TaskScores:
    """Log-likelihood of every choice; per item: ranked correctness and the gold answer's nats and bytes."""
    device = device or torch.device("cpu")
    requests, owners = [], []
    for n, item in enumerate(items):
        for context, continuation in item.choices:
            # An empty context (reference documents) starts after EOS, as documents do in the shards.
            ctx = tokenizer.encode(context).ids if context else [eos_id]
            requests.append((ctx, tokenizer.encode(continuation).ids))
            owners.append(n)
    logprobs = continuation_logprobs(logits_of, requests, seq_len, batch_size, device)
    scores = TaskScores(items[0].task if items else "")
    at = 0
    for item in items:
        k = len(item.choices)
        sums = logprobs[at : at + k]
        at += k
        gold_text = item.choices[item.gold][1]
        scores.gold_nats.append(float(-sums[item.gold]))
        scores.gold_bytes.append(len(gold_text.encode("utf-8")))
        if k > 1:
            per_char = [s / max(1, len(text)) for s, (_, text) in zip(sums, item.choices, strict=True)]
            scores.correct.append(int(int(np.argmax(per_char)) == item.gold))
    return scores


# --------------------------------------------------------------------------------------- a checkpoint


@dataclass
class LoadedModel:
    model: GPT
    tokenizer: Tokenizer
    eos_id: int
    path: Path
    step: int

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)


def checkpoint_path(spec: str | Path) -> Path:
    """A checkpoint file, or a training output folder (its latest checkpoint)."""
    path = Path(spec)
    if path.is_dir():
        latest = C.Checkpoints(path).latest()
        if latest is None:
            raise CurateError(
                f"{path}: no checkpoints/latest; give a checkpoint file or a `curate train` output"
            )
        return latest
    if not path.is_file():
        raise CurateError(f"{path}: no such checkpoint file or training output folder")
    return path


def dataset_tokenizer(root: Any) -> str:
    """The tokenizer.json text of a dataset folder (local, object store, or inside a version)."""
    name = read_manifest(root)["tokenizer"]["path"]
    if isinstance(root, str | Path):
        return read_bytes(join(str(root), name)).decode("utf-8")
    return str((root / name).read_text())


def tokenizer_json(output: Path, data: str) -> str:
    """The tokenizer the model was trained with: the copy the trainer keeps, else the dataset's own."""
    kept = output / TOKENIZER_COPY
    if kept.is_file():
        return kept.read_text(encoding="utf-8")
    if not data:
        raise CurateError(f"{output}: no {TOKENIZER_COPY} beside the checkpoints and no dataset recorded")
    return dataset_tokenizer(resolve_data(data))


TOKENIZER_COPY = "tokenizer.json"  # in a training output folder, beside checkpoints/


def load_model(spec: str | Path, device: torch.device) -> LoadedModel:
    path = checkpoint_path(spec)
    state = C.load(path)
    config = ModelConfig(**state["model_config"])
    model = GPT(config).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    train_config = state.get("train_config") or {}
    text = tokenizer_json(path.parent.parent, str(train_config.get("data", "")))
    tokenizer = load_tokenizer(text)
    return LoadedModel(model, tokenizer, eos_id_of(tokenizer, str(path)), path, int(state.get("step", 0)))


def evaluate_model(
    logits_of: Logits,
    tokenizer: Tokenizer,
    eos_id: int,
    seq_len: int,
    tasks: list[str],
    limit: int | None,
    batch_size: int = 32,
    device: torch.device | None = None,
    item_cache: dict[str, list[T.Item]] | None = None,
) -> dict[str, Any]:
    """{"tasks": {task: summary + per-item values}, "items_per_s": ...} for the given tasks."""
    results: dict[str, Any] = {}
    started, counted = time.perf_counter(), 0
    for task in tasks:
        if item_cache is not None and task in item_cache:
            items = item_cache[task]
        else:
            items = T.read_items(task, limit)
            if item_cache is not None:
                item_cache[task] = items
        scores = score_items(items, logits_of, tokenizer, eos_id, seq_len, batch_size, device)
        results[task] = {**scores.summary(), "per_item": _per_item(scores)}
        counted += len(items)
    seconds = time.perf_counter() - started
    return {
        "tasks": results,
        "items": counted,
        "seconds": seconds,
        "items_per_s": counted / max(seconds, 1e-9),
    }


def _per_item(scores: TaskScores) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {"gold_nats": scores.gold_nats, "gold_bytes": scores.gold_bytes}
    if scores.correct:
        values["correct"] = scores.correct
    return values
