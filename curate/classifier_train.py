"""Train a fastText quality classifier the way DCLM trained its OH-2.5+ELI5 model, and measure it.

Defaults are DCLM's (mlfoundations/dclm, baselines/train_fasttext_classifier.py: lr 0.1, dim 100, ws 5,
epoch 5, minCount 1; baselines/README.md: "--wordNgrams 2 ... we did not deviate from their default values
for our OH2.5 + ELI5 classifier", labels __label__hq / __label__cc). Text is normalised with the
classifier stage's own function (filters/classifier.classifier_text), so the model scores at run time
what it saw in training. A held-out share (shuffled with a fixed seed) gives precision and recall of the
positive label at probability 0.5 and the ROC AUC of its probability.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.core.errors import CurateError
from curate.filters.classifier import LABEL_PREFIX, classifier_text, positive_probability
from curate.filters.decontaminate import EvalSetConfig, eval_items

# DCLM's fastText hyper-parameters (see the module docstring).
DCLM_SETTINGS: dict[str, Any] = {"lr": 0.1, "dim": 100, "ws": 5, "epoch": 5, "minCount": 1, "wordNgrams": 2}
# DCLM trained on ~400k documents: 5 epochs at lr 0.1 are ~2M updates. On a few hundred documents the same
# settings stop after a few thousand updates and rank below chance (held-out AUC 0.45 on 74 positives /
# 446 negatives). Unless set explicitly, epochs grow so that training sees at least MIN_EXAMPLE_PASSES
# examples (at most MAX_EPOCHS passes), and a set smaller than SMALL_SET trains at fastText's own
# small-data learning rate (its tutorial: lr 0.5-1.0, epoch 25 on 12k questions).
MIN_EXAMPLE_PASSES = 10_000
MAX_EPOCHS = 50
SMALL_SET = 20_000
SMALL_SET_LR = 0.5
# Below this held-out ROC AUC the model barely ranks documents: say so instead of printing it as a result.
MIN_USABLE_AUC = 0.7
POSITIVE_LABEL = "hq"
NEGATIVE_LABEL = "cc"


@dataclass
class TrainReport:
    model: str
    train_examples: int
    valid_examples: int
    precision: float | None
    recall: float | None
    roc_auc: float | None
    positive_label: str
    settings: dict[str, Any]

    def lines(self) -> list[str]:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        return [
            f"model: {self.model} ({self.train_examples:,} training, {self.valid_examples:,} held out)",
            f"held-out precision {fmt(self.precision)} · recall {fmt(self.recall)} · "
            f"ROC AUC {fmt(self.roc_auc)} (positive label {self.positive_label})",
            *([self.warning] if self.warning else []),
        ]

    @property
    def warning(self) -> str | None:
        """A line for a model not fit to use, or whose held-out numbers say little."""
        if self.roc_auc is None:
            return "warning: the held-out set lacks one of the labels: no ROC AUC (raise --valid-fraction)"
        if self.roc_auc < MIN_USABLE_AUC:
            return (
                f"warning: held-out ROC AUC {self.roc_auc:.2f} is below {MIN_USABLE_AUC}: this model barely "
                "ranks documents; add training documents, or raise --epoch/--lr "
                f"(used: epoch {self.settings['epoch']}, lr {self.settings['lr']})"
            )
        return None


def read_texts(paths: Sequence[str], text_field: str, role: str) -> list[str]:
    """Documents of JSONL(.gz/.zst), Parquet or text files (text: one document per line)."""
    spec = EvalSetConfig(name=role, paths=list(paths), fields=[text_field])
    texts = [classifier_text(text) for text in eval_items(spec, label=f"--{role}")]
    texts = [text for text in texts if text]
    if not texts:
        raise CurateError(f"--{role}: no text in {', '.join(paths)} (field '{text_field}')")
    return texts


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half)."""
    scores_arr = np.asarray(scores, dtype=np.float64)
    labels_arr = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels_arr.sum()), int((~labels_arr).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores_arr, kind="mergesort")
    sorted_scores = scores_arr[order]
    ranks = np.empty(len(scores_arr), dtype=np.float64)
    i = 0
    while i < len(sorted_scores):  # average ranks over ties
        j = i
        while j + 1 < len(sorted_scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels_arr].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def train(
    positive: Sequence[str],
    negative: Sequence[str],
    output: str,
    text_field: str = "text",
    valid_fraction: float = 0.1,
    seed: int = 42,
    threads: int = 1,
    settings: dict[str, Any] | None = None,
) -> TrainReport:
    import fasttext

    if not 0 <= valid_fraction < 1:
        raise CurateError(f"--valid-fraction must be in [0, 1), got {valid_fraction}")
    examples = [(1, t) for t in read_texts(positive, text_field, "positive")]
    examples += [(0, t) for t in read_texts(negative, text_field, "negative")]
    random.Random(seed).shuffle(examples)  # DCLM's split: shuffle with a seed, hold out the tail
    n_valid = int(round(len(examples) * valid_fraction))
    train_set, valid_set = examples[: len(examples) - n_valid], examples[len(examples) - n_valid :]
    labels = {1: LABEL_PREFIX + POSITIVE_LABEL, 0: LABEL_PREFIX + NEGATIVE_LABEL}
    hyper = {**settings_for(len(train_set)), **{k: v for k, v in (settings or {}).items() if v is not None}}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="curate-fasttext-") as work:
        train_file = os.path.join(work, "train.txt")
        with open(train_file, "w", encoding="utf-8") as handle:
            for label, text in train_set:
                handle.write(f"{labels[label]} {text}\n")
        model = fasttext.train_supervised(input=train_file, seed=seed, thread=threads, verbose=0, **hyper)
    model.save_model(output)
    positive_label = labels[1]
    scores = [positive_probability(model, text, positive_label) for _, text in valid_set]
    truth = [label for label, _ in valid_set]
    predicted = [score >= 0.5 for score in scores]
    true_pos = sum(1 for p, t in zip(predicted, truth, strict=True) if p and t)
    precision = true_pos / sum(predicted) if sum(predicted) else None
    recall = true_pos / sum(truth) if sum(truth) else None
    report = TrainReport(
        model=output,
        train_examples=len(train_set),
        valid_examples=len(valid_set),
        precision=precision,
        recall=recall,
        roc_auc=roc_auc(scores, truth),
        positive_label=positive_label,
        settings={**hyper, "seed": seed, "thread": threads, "valid_fraction": valid_fraction},
    )
    metrics_path(output).write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return report


def settings_for(train_examples: int) -> dict[str, Any]:
    """DCLM's settings, with epochs and learning rate scaled up for a small training set (see above)."""
    epoch = min(MAX_EPOCHS, max(DCLM_SETTINGS["epoch"], -(-MIN_EXAMPLE_PASSES // max(train_examples, 1))))
    lr = DCLM_SETTINGS["lr"] if train_examples >= SMALL_SET else SMALL_SET_LR
    return {**DCLM_SETTINGS, "epoch": epoch, "lr": lr}


def metrics_path(model: str) -> Path:
    """model.bin -> model.metrics.json, beside it."""
    path = Path(model)
    return path.with_name(path.stem + ".metrics.json")
