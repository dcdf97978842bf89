"""Benchmark: does curation make better training data? Equal-budget ablations on the bench crawl.

  nice python bench/ablation.py [--work DIR] [--preset cpu] [--tokens N] [--seeds K] [--limit N]
                                [--json bench/results/ablation.json]

The crawl is real HTML (`../shared/bench/make_web_corpus.py`: the Linux kernel docs and the Debian
handbook, with near-duplicate mirrors). It is curated three ways, all into shards of one tokenizer (a
byte-level BPE trained on the clean reference text, never on a variant, so no variant is favoured):
  default       the default recipe (extract, langid, quality, dedup, ...)
  extract-only  text extraction and tokenization only: no filters, no dedup
  no-dedup      the default recipe without the dedup stages
Each is committed as a dataset version, then one `curate ablate` of the three trains one proxy per variant
and seed at equal tokens and scores each on the bundled tasks; reported: (a) default vs extract-only,
(b) default vs no-dedup. The HTML page is copied beside the JSON.
Each task's difference is reported against seed noise (a paired bootstrap over seeds and items).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from bench.results_file import write_results  # noqa: E402

SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()), None)
VARIANTS = ("default", "extract-only", "no-dedup")
PAIRS = (("default", "extract-only"), ("default", "no-dedup"))
TOKENIZER_VOCAB = 4096


def curate(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "curate", *args], check=True, env=env)


def corpus(work: Path) -> list[Path]:
    folder = work / "corpus"
    files = sorted(folder.glob("*.warc.gz"))
    if files:
        return files
    if SHARED is None:
        sys.exit("no ../shared/bench/make_web_corpus.py to build the crawl")
    subprocess.run([sys.executable, str(SHARED / "bench" / "make_web_corpus.py"), str(folder)], check=True)
    return sorted(folder.glob("*.warc.gz"))


def recipe(variant: str, files: list[Path], out: Path, tokenizer: Path) -> Path:
    from curate.config import config_to_yaml, default_config

    config = default_config()
    config.input.paths = [str(f) for f in files]
    config.output.path = str(out)
    config.output.dataset, config.output.branch = "bench", variant
    config.output.rejected = False
    config.runner.workers = 2
    config.stages.tokenize.tokenizer = str(tokenizer)
    stages = config.stages
    if variant == "extract-only":
        for name in type(stages).model_fields:
            if name not in ("extract", "tokenize"):
                getattr(stages, name).enabled = False
    elif variant == "no-dedup":
        for name in ("dedup_lines", "dedup_exact", "dedup_minhash"):
            getattr(stages, name).enabled = False
    path = out.with_suffix(".yaml")
    path.write_text(config_to_yaml(config))
    return path


def prepare(work: Path, env: dict[str, str]) -> dict[str, dict]:
    """The three versions (skipped when already committed): their documents and tokens."""
    tokenizer = work / "tokenizer.json"
    if not tokenizer.is_file():
        curate("proxy-tokenizer", str(tokenizer), "--vocab", str(TOKENIZER_VOCAB), env=env)
    files = corpus(work)
    sizes = {}
    for variant in VARIANTS:
        out = work / "out" / variant
        if not (out / "stats.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            started = time.time()
            curate("run", str(recipe(variant, files, out, tokenizer)), "--quiet", env=env)
            print(f"{variant}: curated in {time.time() - started:.0f} s", flush=True)
        stats = json.loads((out / "stats.json").read_text())
        tokens = (stats.get("tokenize") or {}).get("total_tokens")
        sizes[variant] = {"documents": stats["documents_kept"], "tokens": tokens}
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "curate" / "bench-ablation"))
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--tasks", nargs="+", default=["all"])
    parser.add_argument("--batch-size", type=int, help="Sequences per step (default: the preset's).")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=500, help="Items per task.")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--force", action="store_true", help="Start over (default: resume finished runs).")
    parser.add_argument(
        "--parallel-seeds", action="store_true", help="One process per seed (use with --threads 1)."
    )
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="Re-read a finished ablation.")
    parser.add_argument(
        "--finished-only", action="store_true", help="Table of the runs scored so far (partial), no training."
    )
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "ablation.json"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CURATE_STORE": str(work / "store")}
    sizes = prepare(work, env)
    print(json.dumps(sizes, indent=2), flush=True)
    if args.prepare_only:
        return
    out = work / "ablate"
    if args.finished_only:
        curate("ablate", *ablate_options(out, args), "--finished-only", env=env)
    elif not args.report_only:
        load = LoadSampler()
        started, cpu = time.time(), children_cpu_seconds()
        try:
            ablate(out, args, env)
        finally:
            load.stop()
        spent = {
            "wall_seconds": round(time.time() - started),
            "cpu_seconds": round(children_cpu_seconds() - cpu),  # user + system of the ablation's processes
            "load_average_1min": load.summary(),  # the whole machine's, sampled every 15 s
        }
        (out / "bench-seconds.json").write_text(json.dumps(spent))
    report(out, sizes, args.json)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class LoadSampler:
    """The machine's 1-minute load average every 15 s while the ablation runs: it is shared, so its speed
    depends on what else runs, and the report must say so."""

    def __init__(self, every: float = 15.0) -> None:
        self.samples: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._done.wait(every):
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        values = self.samples or [os.getloadavg()[0]]
        return {
            "min": min(values),
            "mean": round(sum(values) / len(values), 2),
            "max": max(values),
            "samples": len(values),
        }


def ablate_options(out: Path, args: argparse.Namespace) -> list[str]:
    versions = [f"bench@{variant}" for variant in VARIANTS]
    options = [*versions, "--preset", args.preset, "--tokens", str(args.tokens), "--seeds", str(args.seeds)]
    options += ["--limit", str(args.limit), "--tasks", *args.tasks, "--output", str(out)]
    options += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    return options + (["--threads", str(args.threads)] if args.threads else [])


def ablate(out: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    options = ablate_options(out, args)
    if args.force:
        shutil.rmtree(out / "runs", ignore_errors=True)
    if args.parallel_seeds:  # one process per seed, then one more that finds every run done and compares
        command = [sys.executable, "-m", "curate", "ablate", *options]
        workers = [
            subprocess.Popen([*command, "--only-seed", str(seed)], env=env) for seed in range(args.seeds)
        ]
        failed = [seed for seed, worker in enumerate(workers) if worker.wait() != 0]
        if failed:
            sys.exit(f"the ablation's runs of seeds {failed} failed (see above)")
    curate("ablate", *options, env=env)


def training_log(log: Path) -> dict[str, float]:
    """Final loss, training seconds and tokens/s from the trainer's own log (per-interval rates), which
    also holds for a run resumed from its finished checkpoint (whose summary has no speed)."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    seconds, done = 0.0, 0
    for record in records:
        seconds += (record["tokens"] - done) / record["tokens_per_s"]
        done = record["tokens"]
    return {"loss": records[-1]["loss"], "train_seconds": seconds, "tokens_per_s": done / seconds}


def report(out: Path, sizes: dict[str, dict], json_path: str) -> None:
    """The two pairs' per-task differences against seed noise, each run's speed; JSON + the HTML page."""
    result = json.loads((out / "ablation.json").read_text())
    shutil.copy(out / "index.html", Path(json_path).with_suffix(".html"))
    wanted = {(f"bench@{a}", f"bench@{b}") for a, b in PAIRS}
    rows: list[dict] = [
        {
            "pair": f"{p['a']} vs {p['b']}",
            "a": p["a"],
            "b": p["b"],
            "verdict": p["verdict"],
            "tasks": p["tasks"],
        }
        for p in result["pairs"]
        if (p["a"], p["b"]) in wanted
    ]
    for row in rows:
        print(row["verdict"])
        for task, metrics in row["tasks"].items():
            d = metrics["bpb"]
            print(
                f"  {task:<14} {d['difference']:+.4f} bits/byte [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]"
                f" seed std {d['seed_std']:.4f}{'  significant' if d['significant'] else ''}"
            )
    runs = []
    for scored in sorted(out.glob("runs/*/eval.json")):
        run = json.loads(scored.read_text())
        keys = (
            "variant",
            "seed",
            "train_cpu_seconds",
            "eval_seconds",
            "eval_cpu_seconds",
            "eval_items_per_s",
        )
        runs.append({**{key: run.get(key) for key in keys}, **training_log(scored.parent / "train.jsonl")})
    print(
        f"{'variant':<20}{'seed':>5}{'loss':>8}{'train s':>9}{'CPU s':>7}{'tokens/s':>10}"
        f"{'eval s':>8}{'CPU s':>7}{'items/s':>9}"
    )
    for run in runs:
        print(
            f"{run['variant']:<20}{run['seed']:>5}{run['loss']:>8.3f}{run['train_seconds']:>9.0f}"
            f"{run['train_cpu_seconds'] or 0:>7.0f}{run['tokens_per_s']:>10.0f}"
            f"{run['eval_seconds'] or 0:>8.0f}{run['eval_cpu_seconds'] or 0:>7.0f}"
            f"{run['eval_items_per_s']:>9.1f}"
        )
    for row in list(rows):
        # what an ablation of just this pair costs: the sum of its variants' runs (train + score)
        mine = [r for r in runs if r["variant"] in (row["a"], row["b"])]
        row["runs"] = len(mine)
        row["wall_seconds"] = round(sum(r["train_seconds"] + (r["eval_seconds"] or 0) for r in mine))
        cpu = [r["train_cpu_seconds"] for r in mine] + [r["eval_cpu_seconds"] for r in mine]
        row["cpu_seconds"] = round(sum(cpu)) if None not in cpu else None
        print(f"{row['pair']}: {len(mine)} runs, {row['wall_seconds']} s wall, {row['cpu_seconds']} CPU-s")
    spent = out / "bench-seconds.json"
    whole = json.loads(spent.read_text()) if spent.is_file() else {}
    print(f"whole ablation: {whole}")
    rows.append({**whole, "sizes": sizes, "runs": runs, "ablation": result})
    note = (
        "Equal-token ablations on the bench crawl; mean +- std over seeds, differences with a paired "
        "bootstrap 95% interval over seeds and items; see docs/evaluation.md."
    )
    write_results(json_path, "ablation", note, rows)


if __name__ == "__main__":
    main()
