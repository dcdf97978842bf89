"""Live progress of a job, from the files its processes write.

A run's workers write counters per process (pipelines/progress.py) into the job's progress folder and
the driver writes the stage order there (`_plan.json`). Per stage we report documents in (kept plus
rejected so far) and out, the rate, and a fraction done. Time left is estimated from input bytes: the
bytes of input files read to their end give the expected number of documents, and each stage's pass
rate so far carries that estimate down the pipeline. A training job's progress is its train.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curate.pipelines.progress_files import read_counters


def run_progress(directory: Path, total_bytes: int, elapsed: float) -> dict[str, Any]:
    """Progress of a running curation job.

    The records the readers met per input byte done give the documents to expect; each stage's pass rate
    so far carries that down the pipeline. Until a first input file is read to its end nothing can be
    estimated (fractions 0, no ETA)."""
    found = read_counters(directory)
    counters, records, bytes_read, order = found.stages, found.read, found.bytes, found.order
    bytes_fraction = min(1.0, bytes_read / total_bytes) if total_bytes else 0.0
    expected: float | None = records / bytes_fraction if bytes_fraction > 0 else None
    stages, fractions = [], []
    for name in order:
        entry = counters.get(name, {"out": 0, "rejected": 0})
        docs_in = entry["out"] + entry["rejected"]
        if expected is None:
            fraction = 0.0
        elif expected > 0:
            fraction = min(1.0, docs_in / expected)
        else:
            fraction = 1.0 if bytes_fraction >= 1.0 else 0.0  # every file read and not one record in them
        if expected is not None and docs_in:
            expected *= entry["out"] / docs_in
        fractions.append(fraction)
        stages.append(
            {
                "stage": name,
                "in": docs_in,
                "out": entry["out"],
                "rejected": entry["rejected"],
                "rate": round(docs_in / elapsed, 2) if elapsed > 0 else 0.0,
                "fraction": round(fraction, 4),
            }
        )
    overall = sum(fractions) / len(fractions) if fractions else 0.0
    eta = elapsed * (1 - overall) / overall if overall > 0 else None
    return {
        "stages": stages,
        "fraction": round(overall, 4),
        "eta_s": round(eta, 1) if eta is not None else None,
        "elapsed_s": round(elapsed, 1),
        "input_bytes_read": bytes_read,
        "input_bytes": total_bytes,
    }


def finished_progress(stats: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Progress of a finished run: the exact counts from its stats.json."""
    stages = [
        {
            "stage": name,
            "in": entry["in"],
            "out": entry["out"],
            "rejected": sum(entry["rejected"].values()),
            "rate": round(entry["in"] / seconds, 2) if seconds > 0 else 0.0,
            "fraction": 1.0,
        }
        for name, entry in stats.get("stages", {}).items()
    ]
    return {"stages": stages, "fraction": 1.0, "eta_s": 0.0, "elapsed_s": round(seconds, 1)}


def train_series(output: Path) -> dict[str, Any]:
    """Loss, eval loss, tokens/s and task scores (bits-per-byte, accuracy) so far, from the trainer's
    train.jsonl (a partial line is skipped)."""
    series: dict[str, Any] = {
        "step": [],
        "loss": [],
        "tokens_per_s": [],
        "eval_step": [],
        "eval_loss": [],
        "tasks": {},
    }
    try:
        lines = (output / "train.jsonl").read_text().splitlines()
    except OSError:
        return series
    tasks: dict[str, dict[str, list[float]]] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        series["step"].append(record["step"])
        series["loss"].append(record.get("loss"))
        series["tokens_per_s"].append(record.get("tokens_per_s"))
        if record.get("eval_loss") is not None:
            series["eval_step"].append(record["step"])
            series["eval_loss"].append(record["eval_loss"])
        for task, scores in (record.get("eval_tasks") or {}).items():  # `curate train --eval-tasks`
            curve = tasks.setdefault(task, {"step": [], "bpb": [], "acc": []})
            curve["step"].append(record["step"])
            curve["bpb"].append(scores.get("bpb"))
            curve["acc"].append(scores.get("acc"))
    series["tasks"] = tasks
    return series
