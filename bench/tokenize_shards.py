"""Benchmark: the tokenize+write stage in the Beam pipeline vs raw `tokenizers.encode_batch`; shard reads.

    python bench/tokenize_shards.py [--corpus bench/.corpus] [--texts GLOB ...] [--max-chars 16000000]
                                    [--rounds 7] [--json bench/results/tokenize_shards.json]

Texts: the main text of the real web pages in ../shared/bench/make_web_corpus.py's crawl (26 languages;
built into --corpus on first use and extracted once with curate's HTML extractor), or --texts (JSONL /
JSONL.gz with a "text" field, or plain text files).

Both sides run on the same texts in the same process, the tokenizer on one thread (RAYON_NUM_THREADS=1),
the pipeline on Beam's in-process runner, and both are timed in CPU seconds of the process (all threads),
so they are tokens per second per core. The stage's cost is a run with `TokenizeAndShard` minus the same
pipeline that only reads and counts the documents. A shared machine's noise moves CPU time by tens of
percent between minutes, so each round runs every measurement once, back to back, and the table gives
the median over rounds of each round's ratio (and the lowest and highest). Two ratios:

- whole run: raw / stage on all the texts, fixed costs included (tokenizer load, Beam's bundle setup);
- at scale: the same with the stage's fixed cost, measured on the first few documents, taken out, i.e.
  what a run large enough for the fixed cost not to matter keeps of raw speed (target: >= 80%).

Each against two raw baselines: `encode_batch` (the issue's), and `encode_batch_fast`, the call the
pipeline makes (the same ids, without the character offsets shards do not keep): the second ratio is
the pipeline's own overhead alone.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before `tokenizers` is imported: one core, both sides

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
TINY_DOCS = 16  # the fixed-cost run
# The baseline, and the call the pipeline makes (the same ids without character offsets).
RAW_METHODS = ("encode_batch", "encode_batch_fast")


def cpu_seconds() -> float:
    """CPU time of this process, all threads: other jobs on the machine do not count."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------- texts


def corpus_texts(corpus: Path) -> Path:
    """The crawl's extracted page texts as JSONL.gz (cached beside the WARCs)."""
    from bench.filters import load_texts as extracted_pages
    from bench.pipeline import ensure_corpus

    texts = corpus / "texts.jsonl.gz"
    if texts.exists():
        return texts
    ensure_corpus(corpus)
    print(f"extracting page texts into {texts} ...", flush=True)
    partial = texts.with_suffix(".partial")
    with gzip.open(partial, "wt", encoding="utf-8") as out:
        for doc in extracted_pages(str(corpus / "*.warc.gz"), max_docs=sys.maxsize):
            out.write(json.dumps({"id": doc["id"], "url": doc.get("url"), "text": doc["text"]}) + "\n")
    partial.rename(texts)
    return texts


def load_texts(patterns: list[str], max_chars: int) -> list[dict]:
    docs: list[dict] = []
    size = 0
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if path.endswith((".jsonl", ".jsonl.gz")):
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rt", encoding="utf-8") as handle:
                    texts = [json.loads(line)["text"] for line in handle if line.strip()]
            else:
                try:
                    texts = [Path(path).read_text(encoding="utf-8")]
                except (OSError, UnicodeDecodeError):
                    continue
            for i, text in enumerate(texts):
                docs.append({"id": f"{Path(path).name}#{i}", "text": text})
                size += len(text)
                if size >= max_chars:
                    return docs
    return docs


def write_docs(docs: list[dict], path: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc) + "\n")
    return path


# -------------------------------------------------------------------------------------- measuring


def raw_cpu(tokenizer, texts: list[str], batch_size: int, method: str) -> tuple[int, float]:
    """(tokens incl. one EOS per document, CPU seconds) of plain batched encoding with ``method``."""
    encode = getattr(tokenizer, method)
    start = cpu_seconds()
    tokens = 0
    for i in range(0, len(texts), batch_size):
        for encoding in encode(texts[i : i + batch_size], add_special_tokens=False):
            tokens += len(encoding.ids) + 1
    return tokens, cpu_seconds() - start


def run_raw(tokenizer, texts: list[str], batch_size: int, into: dict[str, float]) -> int:
    """Every raw method once, CPU seconds into ``into``; the token count."""
    for method in RAW_METHODS:
        tokens, into[method] = raw_cpu(tokenizer, texts, batch_size, method)
    return tokens


def pipeline_cpu(docs_file: str, out: str, with_stage: bool, batch_size: int) -> float:
    """CPU seconds of one in-process run that reads the documents with the real reader, then either
    tokenizes and writes shards or only counts them (the baseline).

    Reading (not ``beam.Create``) keeps the documents out of the pickled pipeline: Beam pickles a
    Create's payload once per stage that refers to it, a cost that would not cancel against the baseline.
    """
    import apache_beam as beam

    from curate.config import parse_config
    from curate.pipelines.readers import InputConfig, ReadDocuments
    from curate.pipelines.runner import pipeline_options
    from curate.pipelines.token_shards import TokenizeAndShard

    config = parse_config(
        {
            "output": out,
            "runner": {"name": "direct", "workers": 1},
            "stages": {"tokenize": {"batch_size": batch_size}},
        }
    )
    stage = TokenizeAndShard(config) if with_stage else None  # the driver's preparation: off the clock
    start = cpu_seconds()
    with beam.Pipeline(options=pipeline_options(config.runner, f"{out}/.tmp")) as pipeline:
        docs, _ = pipeline | ReadDocuments(InputConfig(), [docs_file])
        if stage is None:
            _ = docs | beam.combiners.Count.Globally()
        else:
            _ = (docs | stage).shard_infos | beam.combiners.Count.Globally()
    return cpu_seconds() - start


def shard_read(out: str, repeat: int = 3) -> tuple[int, float, int]:
    """(tokens, best wall seconds of ``repeat`` full reads, bytes) streaming row groups as a trainer does."""
    from curate.shards import iter_token_arrays

    shards = sorted(Path(out).glob("shards/*.parquet"))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        tokens = sum(len(array) for shard in shards for array in iter_token_arrays(shard))
        best = min(best, time.perf_counter() - start)
    return tokens, best, sum(path.stat().st_size for path in shards)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--texts", nargs="*", default=None, help="Globs of JSONL(.gz) / text files.")
    parser.add_argument("--max-chars", type=int, default=16_000_000, help="Characters of text to use.")
    # 32: the fastest raw batch size measured here (256 was ~10% slower: a batch holds every Encoding
    # at once); the pipeline's BatchElements then adapts between 1 and the same maximum.
    parser.add_argument("--batch-size", type=int, default=32, help="Both sides' encode_batch size.")
    parser.add_argument("--rounds", type=int, default=7, help="Rounds of all measurements; medians reported.")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "tokenize_shards.json")
    args = parser.parse_args()

    patterns = args.texts or [str(corpus_texts(args.corpus))]
    docs = load_texts(patterns, args.max_chars)
    if len(docs) <= TINY_DOCS:
        print(f"too few texts under {patterns}", file=sys.stderr)
        return 1
    from curate.core.tokenizer import load, prepare

    tokenizer = load(prepare("gpt2").json)
    texts, tiny_texts = [d["text"] for d in docs], [d["text"] for d in docs[:TINY_DOCS]]
    work = tempfile.mkdtemp(prefix="curate-bench-tokenize-")
    full_file = write_docs(docs, f"{work}/full.jsonl")
    tiny_file = write_docs(docs[:TINY_DOCS], f"{work}/tiny.jsonl")
    for method in RAW_METHODS:  # warm up
        getattr(tokenizer, method)(texts[: args.batch_size], add_special_tokens=False)
    pipeline_cpu(tiny_file, f"{work}/warm", True, args.batch_size)  # imports, caches: off the clock

    rounds: list[dict[str, float]] = []
    print(f"{len(docs):,} documents, {sum(map(len, texts)):,} characters; {args.rounds} rounds", flush=True)
    for r in range(args.rounds):
        # Raw first in even rounds, last in odd ones: a drift of the machine's speed favours neither.
        raw: dict[str, float] = {}
        if r % 2 == 0:
            tokens = run_raw(tokenizer, texts, args.batch_size, raw)
        base = pipeline_cpu(full_file, f"{work}/base", False, args.batch_size)
        full = pipeline_cpu(full_file, f"{work}/out{r}", True, args.batch_size)
        if r % 2 == 1:
            tokens = run_raw(tokenizer, texts, args.batch_size, raw)
        tiny_base = pipeline_cpu(tiny_file, f"{work}/tiny-base", False, args.batch_size)
        tiny = pipeline_cpu(tiny_file, f"{work}/tiny{r}", True, args.batch_size)
        stage, fixed = full - base, max(tiny - tiny_base, 0.0)
        row = {"stage_cpu_s": round(stage, 3), "stage_fixed_cpu_s": round(fixed, 3)}
        row |= {"pipeline_cpu_s": round(full, 3), "baseline_cpu_s": round(base, 3)}
        for method in RAW_METHODS:
            _, tiny_raw = raw_cpu(tokenizer, tiny_texts, args.batch_size, method)
            row[f"{method}_cpu_s"] = round(raw[method], 3)
            row[f"vs_{method}_whole_run"] = round(raw[method] / stage, 3)
            row[f"vs_{method}_at_scale"] = round((raw[method] - tiny_raw) / max(stage - fixed, 1e-9), 3)
        rounds.append(row)
        print(
            f"  round {r + 1}: stage {stage:.2f} cpu-s (fixed {fixed:.2f}), raw encode_batch "
            f"{raw['encode_batch']:.2f}, encode_batch_fast {raw['encode_batch_fast']:.2f}; stage vs "
            f"encode_batch {row['vs_encode_batch_whole_run']:.1%} "
            f"(at scale {row['vs_encode_batch_at_scale']:.1%})",
            flush=True,
        )

    read_tokens, read_s, shard_bytes = shard_read(f"{work}/out0")
    assert read_tokens == tokens, (read_tokens, tokens)  # every token written, each document once
    stage_rate = statistics.median(tokens / r["stage_cpu_s"] for r in rounds)
    fixed = statistics.median(r["stage_fixed_cpu_s"] for r in rounds)
    results: dict = {
        "texts": [os.path.relpath(p, REPO) if str(p).startswith(str(REPO)) else str(p) for p in patterns],
        "documents": len(docs),
        "characters": sum(map(len, texts)),
        "tokens": tokens,
        "batch_size": args.batch_size,
        "pipeline_stage_tokens_per_cpu_s": round(stage_rate),
        "stage_fixed_cpu_s": round(fixed, 3),
    }
    rows = [
        ("pipeline tokenize+write stage", f"{stage_rate:,.0f} tok/cpu-s", f"incl. ~{fixed:.2f} cpu-s fixed")
    ]
    for method in RAW_METHODS:
        rate = statistics.median(tokens / r[f"{method}_cpu_s"] for r in rounds)
        whole = spread([r[f"vs_{method}_whole_run"] for r in rounds])
        at_scale = spread([r[f"vs_{method}_at_scale"] for r in rounds])
        results[f"raw_{method}_tokens_per_cpu_s"] = round(rate)
        results[f"pipeline_vs_raw_{method}_whole_run"] = whole
        results[f"pipeline_vs_raw_{method}_at_scale"] = at_scale
        rows += [
            (f"raw tokenizers.{method}", f"{rate:,.0f} tok/cpu-s", ""),
            (
                "  pipeline / raw, whole run",
                f"{whole['median']:.1%}",
                f"rounds {whole['min']:.1%}-{whole['max']:.1%}",
            ),
            (
                "  pipeline / raw, at scale",
                f"{at_scale['median']:.1%}",
                f"rounds {at_scale['min']:.1%}-{at_scale['max']:.1%}",
            ),
        ]
    results |= {
        "shard_bytes": shard_bytes,
        "bytes_per_token": round(shard_bytes / tokens, 3),
        "shard_read_tokens_per_s": round(read_tokens / read_s),
        "rounds": rounds,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    rows += [
        ("shards on disk", f"{shard_bytes / tokens:.2f} bytes/token", "Parquet, zstd"),
        ("shard read (pyarrow, row groups)", f"{read_tokens / read_s:,.0f} tok/s", f"best: {read_s:.3f}s"),
    ]
    print(f"{len(docs):,} documents, {results['characters']:,} chars, {tokens:,} tokens (GPT-2); medians")
    print("tokenizer on one thread (RAYON_NUM_THREADS=1), pipeline on the in-process runner; CPU time")
    width = max(len(r[0]) for r in rows)
    for name, rate, detail in rows:
        print(f"  {name:<{width}}  {rate:>20}  {detail}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
