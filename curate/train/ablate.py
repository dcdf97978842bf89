"""Equal-budget ablations: is dataset version B better training data than version A?

One proxy model per variant and seed, all with the same architecture, tokenizer, token budget, learning
rate schedule and data-order rule (seeded shuffle; the seed, not the variant, decides the initial weights,
so seed s of every variant starts from the same weights); then every final model is scored on the same
items of the bundled tasks. The tokenizer is the one the versions were built with and must be the same
for all of them (checked by its sha256): bits-per-byte would still compare across tokenizers, but a
smaller vocabulary changes the proxy's capacity, so variants must not differ in it.

Statistics, per task: mean and standard deviation over seeds; for each pair, the difference of means with
a 95% interval from a bootstrap that resamples seeds within each variant and items (the same items for
both, paired), so it holds both seed noise and the finite test set. Bits-per-byte of the gold answer is
the primary score (continuous, it separates variants long before accuracy does at small scale:
DataDecide, arXiv:2504.11393); accuracy is reported beside it.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curate import train_runs
from curate.core.errors import CurateError
from curate.shards import read_manifest
from curate.train import evaluate as E
from curate.train import tasks as bundled
from curate.train.presets import get_preset
from curate.train.trainer import TrainConfig, Trainer
from curate.versions import locate, resolve_data
from curate.versions.base import VersionStore

BOOTSTRAP = 2000
STYLE = (
    "body{font:14px system-ui;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.sig{font-weight:bold}"
)
RESULT, PAGE = "ablation.json", "index.html"


@dataclass(frozen=True)
class AblationPreset:
    """A proxy size and the token budget at which it is run by default."""

    train_preset: str
    tokens: int
    eval_limit: int  # items per task
    note: str


ABLATION_PRESETS: dict[str, AblationPreset] = {
    # 2 variants x 3 seeds x 2M tokens: ~11 minutes on 2 idle CPU cores (docs/evaluation.md, measured rates).
    # It resolves large differences only (e.g. a filtered crawl vs. raw extraction, on the reference text).
    "cpu": AblationPreset(
        "cpu-proxy", 2_000_000, 500, "0.6M parameters with a 4k vocabulary; large differences only"
    ),
    # DataDecide's smallest ranking-reliable scale: ~150M parameters at ~Chinchilla tokens (20/param).
    "gpu-150m": AblationPreset("gpt2-small", 3_000_000_000, 2000, "124M params, 3B tokens"),
    # DCLM's 400M-1x scale (412M params, 8.2B tokens), close to GPT-2 medium.
    "gpu-400m": AblationPreset("gpt2-medium", 8_000_000_000, 2000, "350M params, 8B tokens"),
    # FineWeb's ablation scale: 1.8B params on 28B tokens (here GPT-2 large, 774M, 28B tokens).
    "gpu-1b": AblationPreset("gpt2-large", 28_000_000_000, 5000, "774M params, 28B tokens"),
}


@dataclass(frozen=True)
class Variant:
    spec: str  # as given (NAME@REF or a folder)
    data: str  # what the trainer reads: NAME@COMMIT (pinned) or the folder
    label: str
    commit: str | None
    store: VersionStore | None
    tokenizer_sha256: str
    tokens: int


def open_variant(spec: str) -> Variant:
    """A dataset version pinned to its commit (so the ablation trains on what it names), or a folder."""
    store: VersionStore | None = None
    commit = None
    data = spec
    if "@" in spec or spec.startswith("lakefs://"):
        store, ref = locate(spec)
        commit = store.resolve(ref).id
        data = f"lakefs://{store.name}/{commit}" if spec.startswith("lakefs://") else f"{store.name}@{commit}"
    elif not Path(spec).is_dir():
        raise CurateError(f"{spec}: not a dataset version (NAME@REF, lakefs://REPO/REF) nor an output folder")
    root = resolve_data(data)
    manifest = read_manifest(root)
    tokenizer = manifest.get("tokenizer") or {}
    return Variant(
        spec, data, spec, commit, store, str(tokenizer.get("sha256")), int(manifest.get("total_tokens", 0))
    )


def check_tokenizers(variants: list[Variant]) -> str:
    shas = {v.tokenizer_sha256 for v in variants}
    if len(shas) != 1:
        listed = ", ".join(f"{v.label}: {v.tokenizer_sha256[:12]}" for v in variants)
        raise CurateError(
            f"the versions were tokenized differently ({listed}); an ablation needs one tokenizer for all: "
            "re-run them with the same stages.tokenize.tokenizer (docs/evaluation.md)"
        )
    return shas.pop()


@dataclass
class AblationConfig:
    versions: list[str]
    output: str
    preset: str = "cpu"
    tokens: int | None = None  # None: the preset's
    seeds: int = 3
    tasks: list[str] | None = None  # None: all bundled tasks
    limit: int | None = None  # items per task; None: the preset's
    device: str = "auto"
    steps: int | None = None  # overrides tokens (tests)
    batch_size: int | None = None
    eval_batch_size: int = 32
    attach: bool = True
    only_seed: int | None = None  # train and score just this seed's runs, no table (one share of the work)
    finished_only: bool = False  # train nothing: the table of the runs scored so far (marked partial)


def run_ablation(config: AblationConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and score every (variant, seed), resuming finished runs; write the table, page, attachments."""
    if len(config.versions) < 2:
        raise CurateError("an ablation compares at least two versions")
    if config.preset not in ABLATION_PRESETS:
        raise CurateError(f"unknown ablation preset '{config.preset}': choose {', '.join(ABLATION_PRESETS)}")
    preset = ABLATION_PRESETS[config.preset]
    model = get_preset(preset.train_preset)
    tasks = bundled.check_tasks(config.tasks or [])
    limit = config.limit if config.limit is not None else preset.eval_limit
    variants = [open_variant(spec) for spec in config.versions]
    tokenizer_sha = check_tokenizers(variants)
    batch = config.batch_size or model.batch_size
    tokens_per_step = batch * model.model.seq_len * model.grad_accum
    tokens = config.tokens or preset.tokens
    steps = config.steps or max(1, math.ceil(tokens / tokens_per_step))
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    plan = {
        "preset": config.preset,
        "train_preset": preset.train_preset,
        "steps": steps,
        "batch_size": batch,
        "seq_len": model.model.seq_len,
        "tokens_per_run": steps * tokens_per_step,
        "seeds": config.seeds,
        "tasks": tasks,
        "items_per_task": limit,
        "tokenizer_sha256": tokenizer_sha,
    }
    say(
        f"ablation: {len(variants)} variants x {config.seeds} seeds, {preset.train_preset}, {steps} steps x "
        f"{tokens_per_step:,} tokens = {steps * tokens_per_step:,} tokens per run; tasks {', '.join(tasks)}"
    )
    if config.only_seed is not None and not 0 <= config.only_seed < config.seeds:
        raise CurateError(f"--only-seed {config.only_seed}: give a seed from 0 to {config.seeds - 1}")

    def train_and_score(variant: Variant, seed: int) -> dict[str, Any]:
        return _train_and_score(
            variant, seed, steps, preset.train_preset, config, tasks, limit, items, output, say
        )

    items: dict[str, list[bundled.Item]] = {}
    runs = (
        _finished_runs(variants, config, output)
        if config.finished_only
        else _runs(variants, config, output, train_and_score)
    )
    if config.only_seed is not None:  # another process (or machine) runs the other seeds
        return {"plan": plan, "runs": runs}
    if config.finished_only:
        plan["partial"] = {label: len(finished) for label, finished in runs.items()}  # seeds scored so far
    result = {
        "plan": plan,
        "variants": [
            {
                "label": v.label,
                "data": v.data,
                "commit": v.commit,
                "tokens": v.tokens,
                "epochs": round(steps * tokens_per_step / v.tokens, 2) if v.tokens else None,
            }
            for v in variants
        ],
        **compare(runs, tasks),
        "created": time.time(),
    }
    (output / RESULT).write_text(json.dumps(result, indent=2) + "\n")
    (output / PAGE).write_text(page(result))
    if config.attach and not config.finished_only:
        attach(variants, result, output)
    return result


def _runs(
    variants: list[Variant],
    config: AblationConfig,
    output: Path,
    train_and_score: Callable[[Variant, int], dict[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """Every (seed, variant) run, or only seed `config.only_seed`'s; progress.json says how far."""
    runs: dict[str, list[dict[str, Any]]] = {v.label: [] for v in variants}
    seeds = range(config.seeds) if config.only_seed is None else [config.only_seed]
    total, done = len(variants) * len(seeds), 0
    for seed in seeds:
        for variant in variants:
            train_runs.write_progress(output, done=done, total=total, current=f"{variant.label} seed {seed}")
            runs[variant.label].append(train_and_score(variant, seed))
            done += 1
    train_runs.write_progress(output, done=done, total=total, current=None)
    return runs


def _finished_runs(
    variants: list[Variant], config: AblationConfig, output: Path
) -> dict[str, list[dict[str, Any]]]:
    """The runs scored so far (for a table while the others still train)."""
    runs: dict[str, list[dict[str, Any]]] = {v.label: [] for v in variants}
    for seed in range(config.seeds):
        for variant in variants:
            scored = run_folder(output, variant, seed) / "eval.json"
            if scored.is_file():
                runs[variant.label].append(json.loads(scored.read_text()))
    missing = [label for label, finished in runs.items() if not finished]
    if missing:
        raise CurateError(f"no finished run of {', '.join(missing)} in {output} yet: nothing to compare")
    return runs


def run_folder(output: Path, variant: Variant, seed: int) -> Path:
    return output / "runs" / f"{hashlib.sha256(variant.data.encode()).hexdigest()[:10]}-seed{seed}"


def _train_and_score(
    variant: Variant,
    seed: int,
    steps: int,
    train_preset: str,
    config: AblationConfig,
    tasks: list[str],
    limit: int,
    items: dict[str, list[bundled.Item]],
    output: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    folder = run_folder(output, variant, seed)
    scored = folder / "eval.json"
    if scored.is_file():  # finished before: an interrupted ablation resumes where it stopped
        say(f"{variant.label} seed {seed}: already scored")
        return dict(json.loads(scored.read_text()))
    train_config = TrainConfig(
        data=variant.data,
        preset=train_preset,
        steps=steps,
        seed=seed,
        output=str(folder),
        device=config.device,
        batch_size=config.batch_size,
        eval_every=0,
        eval_fraction=0.0,
        log_every=max(1, steps // 10),
        resume=True,
        quiet=True,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer = Trainer(train_config)
    summary = trainer.train()
    trained, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started

    def logits(idx: torch.Tensor) -> torch.Tensor:
        return trainer.raw(idx)

    trainer.raw.eval()
    scores = E.evaluate_model(
        logits,
        trainer.eval_tokenizer,
        trainer.shards.eos_id,
        trainer.hparams.seq_len,
        tasks,
        limit,
        config.eval_batch_size,
        trainer.device,
        items,
    )
    record = {
        "variant": variant.label,
        "seed": seed,
        "loss": summary.get("loss"),
        "train_seconds": trained,
        "train_cpu_seconds": train_cpu,  # this process's CPU time, all threads (the machine may be shared)
        "eval_seconds": scores["seconds"],
        "eval_cpu_seconds": time.process_time() - cpu_started - train_cpu,
        "tokens_per_s": summary.get("tokens_per_s"),
        "eval_items_per_s": scores["items_per_s"],
        "tasks": scores["tasks"],
    }
    scored.write_text(json.dumps(record))
    reference = scores["tasks"].get(bundled.REFERENCE, {}).get("bpb")
    say(
        f"{variant.label} seed {seed}: loss {summary.get('loss') or float('nan'):.3f}, "
        f"{summary.get('tokens_per_s') or 0:,.0f} tokens/s, {scores['items_per_s']:.0f} eval items/s"
        + (f", reference {reference:.3f} bits/byte" if reference else "")
    )
    return record


# ------------------------------------------------------------------------------------------ statistics


def _run_bpb(run: dict[str, Any], task: str, picks: np.ndarray) -> np.ndarray:
    """Bits-per-byte of one run on each bootstrap resample of the items (rows of `picks`)."""
    values = run["tasks"][task]["per_item"]
    nats, nbytes = np.array(values["gold_nats"]), np.array(values["gold_bytes"], dtype=np.float64)
    return nats[picks].sum(1) / nbytes[picks].sum(1) / E.LN2


def _run_acc(run: dict[str, Any], task: str, picks: np.ndarray) -> np.ndarray:
    return np.array(run["tasks"][task]["per_item"]["correct"], dtype=np.float64)[picks].mean(1)


METRICS = {"bpb": (_run_bpb, -1), "acc": (_run_acc, +1)}  # direction: +1 when higher is better


def compare(runs: dict[str, list[dict[str, Any]]], tasks: list[str]) -> dict[str, Any]:
    """Per task: mean +- std per variant; per pair (A, B): B - A with a 95% interval and a verdict."""
    labels = list(runs)
    rng = np.random.default_rng(0)
    table: dict[str, Any] = {}
    pairs: list[dict[str, Any]] = []
    differences: dict[tuple[str, str], dict[str, Any]] = {}
    for task in tasks:
        first = runs[labels[0]][0]["tasks"][task]
        n_items = first["items"]
        picks = rng.integers(0, n_items, size=(BOOTSTRAP, n_items))
        row: dict[str, Any] = {}
        metrics = [m for m in METRICS if m in first]
        boot: dict[str, dict[str, np.ndarray]] = {}
        for label in labels:
            row[label] = {}
            for metric in metrics:
                values = [run["tasks"][task][metric] for run in runs[label]]
                row[label][metric] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                    "seeds": values,
                }
                per_run = np.stack(
                    [METRICS[metric][0](run, task, picks) for run in runs[label]]
                )  # (seeds, B)
                seeds = rng.integers(0, len(per_run), size=(BOOTSTRAP, len(per_run)))
                boot.setdefault(label, {})[metric] = per_run[seeds, np.arange(BOOTSTRAP)[:, None]].mean(1)
        table[task] = row
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                entry = differences.setdefault((a, b), {})
                for metric in metrics:
                    diff = row[b][metric]["mean"] - row[a][metric]["mean"]
                    low, high = np.percentile(boot[b][metric] - boot[a][metric], [2.5, 97.5])
                    direction = METRICS[metric][1]
                    noise = max(row[a][metric]["std"], row[b][metric]["std"])
                    entry.setdefault(task, {})[metric] = {
                        "difference": diff,
                        "ci": [float(low), float(high)],
                        "seed_std": noise,
                        "b_better": bool(direction * diff > 0),
                        "significant": bool(low > 0 or high < 0),
                    }
    for (a, b), by_task in differences.items():
        primary = [by_task[t]["bpb"] for t in tasks]
        better = sum(d["b_better"] for d in primary)
        significant = sum(d["b_better"] and d["significant"] for d in primary)
        worse = sum((not d["b_better"]) and d["significant"] for d in primary)
        verdict = (
            f"{b} better than {a} on {better} of {len(tasks)} tasks (bits-per-byte), significant on "
            f"{significant}; significantly worse on {worse}"
        )
        pairs.append({"a": a, "b": b, "tasks": by_task, "verdict": verdict})
    return {"table": table, "pairs": pairs, "verdicts": [p["verdict"] for p in pairs]}


# ------------------------------------------------------------------------------------------ outputs


def attach(variants: list[Variant], result: dict[str, Any], output: Path) -> None:
    """A summary of the ablation on every compared version (shown by `curate versions show`, the service)."""
    name = "ablation-" + hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:12]
    record = {
        "kind": "ablation",
        "output": str(output.resolve()),
        "created": result["created"],
        "versions": [v["label"] for v in result["variants"]],
        "plan": result["plan"],
        "verdicts": result["verdicts"],
    }
    for variant in variants:
        if variant.store is not None and variant.commit is not None:
            variant.store.attach(variant.commit, name, record)


def _svg_strip(task: str, row: dict[str, Any], metric: str) -> str:
    """Each seed's score per variant as dots, with the mean as a bar: seed noise at a glance."""
    values = [v for label in row for v in row[label][metric]["seeds"]]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    width, lane = 420, 26
    parts = [
        f'<svg width="{width + 170}" height="{lane * len(row) + 30}" role="img" aria-label="{task} {metric}">'
    ]
    for i, label in enumerate(row):
        y = 20 + i * lane
        parts.append(f'<text x="0" y="{y + 4}" font-size="12">{html.escape(label[:24])}</text>')
        for value in row[label][metric]["seeds"]:
            x = 170 + (value - low) / span * width
            parts.append(f'<circle cx="{x:.1f}" cy="{y}" r="4" fill="hsl({i * 137 % 360},60%,45%)"/>')
        mean = 170 + (row[label][metric]["mean"] - low) / span * width
        parts.append(f'<line x1="{mean:.1f}" x2="{mean:.1f}" y1="{y - 8}" y2="{y + 8}" stroke="#222"/>')
    bottom = 20 + len(row) * lane
    parts.append(f'<text x="170" y="{bottom}" font-size="11">{low:.4f}</text>')
    parts.append(f'<text x="{170 + width}" y="{bottom}" font-size="11" text-anchor="end">{high:.4f}</text>')
    return "".join(parts) + "</svg>"


def page(result: dict[str, Any]) -> str:
    """A self-contained HTML page: plan, verdicts, per-task tables and strip plots (no scripts, no CDN)."""
    plan = result["plan"]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>curate ablation</title>",
        f"<style>{STYLE}</style></head><body><h1>Ablation</h1>",
        f"<p>{html.escape(plan['train_preset'])} proxy, {plan['steps']:,} steps, "
        f"{plan['tokens_per_run']:,} tokens per run, {plan['seeds']} seeds, {plan['items_per_task']} items "
        f"per task; tokenizer sha256 {plan['tokenizer_sha256'][:12]}. Bits-per-byte (lower is better) of the "
        "gold answer is the primary score; intervals are 95% bootstrap over seeds and items.</p>",
        (
            "<p class='error'><b>Partial</b>: only the runs finished so far; seeds per variant: "
            + html.escape(", ".join(f"{label} {n}" for label, n in plan["partial"].items()))
            + "</p>"
            if plan.get("partial")
            else ""
        ),
        "<ul>",
        *(f"<li>{html.escape(v)}</li>" for v in result["verdicts"]),
        "</ul><h2>Variants</h2><table><tr><th>variant</th><th>data</th><th>tokens</th><th>epochs</th></tr>",
        *(
            f"<tr><td>{html.escape(v['label'])}</td><td>{html.escape(v['data'])}</td><td>{v['tokens']:,}</td>"
            f"<td>{v['epochs']}</td></tr>"
            for v in result["variants"]
        ),
        "</table>",
    ]
    for task, row in result["table"].items():
        out.append(
            f"<h2>{html.escape(task)}</h2><table><tr><th>variant</th><th>bits/byte</th><th>accuracy</th></tr>"
        )
        for label, metrics in row.items():
            acc = metrics.get("acc")
            acc_text = f"{acc['mean']:.4f} ± {acc['std']:.4f}" if acc else "-"
            out.append(
                f"<tr><td>{html.escape(label)}</td><td>{metrics['bpb']['mean']:.4f} ± "
                f"{metrics['bpb']['std']:.4f}</td><td>{acc_text}</td></tr>"
            )
        out.append(
            "</table><table><tr><th>pair (B − A)</th><th>Δ bits/byte [95% CI]</th>"
            "<th>Δ accuracy [95% CI]</th></tr>"
        )
        for pair in result["pairs"]:
            cells = []
            for metric in ("bpb", "acc"):
                d = pair["tasks"][task].get(metric)
                cells.append(
                    "<td>-</td>"
                    if d is None
                    else f"<td class='{'sig' if d['significant'] else ''}'>"
                    f"{d['difference']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]</td>"
                )
            out.append(
                f"<tr><td>{html.escape(pair['b'])} − {html.escape(pair['a'])}</td>{''.join(cells)}</tr>"
            )
        out.append("</table>" + _svg_strip(task, row, "bpb"))
    out.append("</body></html>")
    return "\n".join(out)
