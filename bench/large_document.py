"""Large documents: one over input.max_document_bytes is rejected as it is read, and one under it costs
time linear in its size.

The document is a repetitive page (forum, template spam): 40 real sentences from the sample crawl in
random order. That shape made Gopher's repeated n-gram walk quadratic (1 MB 2.3 s, 2 MB ~9 s); the
walk it had before is kept below as this benchmark's baseline only.

All times are CPU seconds of this process (on a shared machine wall time mostly measures the
neighbours). For each size the table shows the quality stage's annotate call alone (now and with the
previous walk), the whole default recipe (`curate run`, one worker; the page is rejected by Gopher's
repetition rules, as such a page should be) and the default recipe with `quality` off, so that the page
also goes through dedup and tokenize. "per MB" takes off the fixed cost of a run, measured on a 1 kB
document.

    python bench/large_document.py [--sizes 1 2 5] [--huge-mb 52] [--baseline-max-mb 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from curate.config import parse_config
from curate.filters import gopher
from curate.filters.quality import QualityConfig, QualityFilter
from curate.pipelines.readers import InputConfig, read_file
from curate.run import run

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results" / "large_document.json"


def repetitive_page(size: int, seed: int = 0) -> str:
    """``size`` characters of 40 real sentences (from the sample crawl) in random order."""
    texts = []
    for path in sorted((DATA / "jsonl").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle]
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s.split()) >= 4]
    rng = random.Random(seed)
    chosen = rng.sample(sentences, 40)
    parts, total = [], 0
    while total < size:
        sentence = rng.choice(chosen)
        parts.append(sentence)
        total += len(sentence) + 1
    return " ".join(parts)[:size]


def previous_dup_ngram_chars(grams: gopher._NGrams, starts: np.ndarray, n: int) -> int:
    """The walk before it was made linear: an earlier occurrence that the walk jumped over sent it
    scanning every position before the current one (baseline only)."""
    ids = grams.ids
    first_of = grams.first[ids]
    candidates = np.flatnonzero(first_of != np.arange(len(ids)))
    offsets = starts.tolist()
    skipped = np.zeros(len(ids), dtype=bool)
    chars, resume = 0, 0
    for position, earliest in zip(candidates.tolist(), first_of[candidates].tolist(), strict=True):
        if position < resume:
            continue
        if skipped[earliest]:
            before = np.flatnonzero(ids[:position] == ids[position])
            if skipped[before].all():
                continue
        chars += offsets[position + n] - offsets[position]
        resume = position + n
        skipped[position + 1 : resume] = True
    return chars


def quality_seconds(text: str, previous_walk: bool = False) -> tuple[float, dict]:
    quality = QualityFilter(QualityConfig())
    patch = (
        mock.patch.object(gopher, "_dup_ngram_chars", previous_dup_ngram_chars)
        if previous_walk
        else mock.patch.object(gopher, "_dup_ngram_chars", gopher._dup_ngram_chars)
    )
    with patch:
        started = time.process_time()
        (signals,) = quality.annotate([{"text": text, "lang": "en"}])
        return time.process_time() - started, signals


def write_jsonl(path: Path, texts: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")


def run_seconds(inputs: Path, out: Path, quality: bool = True) -> tuple[float, dict]:
    """CPU seconds of a whole run: one worker runs in this process, so its CPU time is all the work
    (wall time on a shared machine mostly measures the neighbours)."""
    recipe = {
        "input": [str(inputs)],
        "output": str(out),
        "runner": {"name": "direct", "workers": 1},
        "stages": {"quality": {"enabled": quality}},
    }
    started = time.process_time()
    summary = run(parse_config(recipe), progress=False)
    return time.process_time() - started, summary.stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 2, 5], help="document sizes in MB")
    parser.add_argument("--huge-mb", type=float, default=52)
    parser.add_argument(
        "--baseline-max-mb", type=float, default=2, help="time the previous walk up to this size (it is slow)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-large-doc-"))
    result: dict = {"document": "40 real sentences from ../shared/data/jsonl in random order", "sizes": []}

    # One document over the limit, beside a small one: rejected as it is read.
    huge = work / "huge.jsonl"
    write_jsonl(
        huge, ["A small document that is kept or rejected on its merits.", "x" * int(args.huge_mb * 1e6)]
    )
    started = time.process_time()
    read = list(read_file(str(huge), InputConfig()))
    reader_seconds = time.process_time() - started
    seconds, stats = run_seconds(huge, work / "out-huge")
    result["huge"] = {
        "mb": args.huge_mb,
        "reader_seconds": round(reader_seconds, 2),
        "run_seconds": round(seconds, 2),
        "read_rejected": stats["stages"]["read"]["rejected"],
        "reasons_seen_by_reader": sorted({d.get("reason", "read") for d in read}),
    }
    print(f"{args.huge_mb:g} MB document: reader {reader_seconds:.2f} CPU-s, whole run {seconds:.1f} CPU-s, "
          f"read stage rejected {stats['stages']['read']['rejected']}")  # fmt: skip

    tiny = work / "tiny.jsonl"
    write_jsonl(tiny, [repetitive_page(1000)])
    fixed, _ = run_seconds(tiny, work / "out-tiny")
    fixed_no_quality, _ = run_seconds(tiny, work / "out-tiny-nq", quality=False)
    result["fixed_run_seconds"] = {"default": round(fixed, 2), "quality_off": round(fixed_no_quality, 2)}

    header = (
        f"{'MB':>4} | {'quality s':>9} | {'previous walk s':>15} | {'default run s':>13} | {'per MB':>6} "
        f"| {'quality off s':>13} | {'per MB':>6} | rejected by"
    )
    print(f"fixed cost of a run: {fixed:.1f} CPU-s (quality off: {fixed_no_quality:.1f} CPU-s)")
    print(header)
    print("-" * len(header))
    for mb in args.sizes:
        text = repetitive_page(int(mb * 1e6))
        now, signals = quality_seconds(text)
        before = None
        if mb <= args.baseline_max_mb:
            before, old_signals = quality_seconds(text, previous_walk=True)
            assert old_signals == signals, "the linear walk must give the same signals"
        path = work / f"doc-{mb:g}mb.jsonl"
        write_jsonl(path, [text])
        seconds, stats = run_seconds(path, work / f"out-{mb:g}")
        seconds_nq, stats_nq = run_seconds(path, work / f"out-nq-{mb:g}", quality=False)
        reasons = [r for s in stats["stages"].values() for r in s["rejected"]]
        row = {
            "mb": mb,
            "quality_seconds": round(now, 3),
            "previous_walk_quality_seconds": None if before is None else round(before, 3),
            "default_run_seconds": round(seconds, 2),
            "default_run_seconds_per_mb": round((seconds - fixed) / mb, 2),
            "quality_off_run_seconds": round(seconds_nq, 2),
            "quality_off_run_seconds_per_mb": round((seconds_nq - fixed_no_quality) / mb, 2),
            "rejected_by": reasons,
            "quality_off_kept": stats_nq["documents_kept"],
        }
        result["sizes"].append(row)
        print(
            f"{mb:>4g} | {now:>9.2f} | {'-' if before is None else f'{before:.2f}':>15} | {seconds:>13.1f} | "
            f"{row['default_run_seconds_per_mb']:>6.1f} | {seconds_nq:>13.1f} | "
            f"{row['quality_off_run_seconds_per_mb']:>6.1f} | {', '.join(reasons) or 'kept'}",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
