"""Benchmark: tokenize+write inside the Beam pipeline vs raw `tokenizers.encode_batch`, and shard reads.

Both sides run on the same texts in the same process, the tokenizer on one thread (RAYON_NUM_THREADS=1)
and the pipeline on Beam's in-process runner, and both are timed in CPU seconds of the process (all its
threads), i.e. tokens per second per core, unaffected by other jobs on a shared machine. Their ratio is
the share of raw tokenizer speed the pipeline keeps (target: >= 80%). The stage's cost is the run with
`TokenizeAndShard` minus the same pipeline that only creates and counts the documents.

  python bench/tokenize_shards.py [--texts GLOB ...] [--max-tokens 3000000]
                                  [--json bench/results/tokenize_shards.json]

Default texts: the real CCNet documents in ../shared/data/jsonl plus, when present, Debian's
/usr/share/doc text files (*.txt, *.rst, *.md over 2 KB), real English prose and documentation.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

# This file is named like the stdlib `tokenize` module: keep its folder off the import path, or
# `import tokenize` (linecache, warnings) would load this script instead.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before `tokenizers` is imported: one core, both sides

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_JSONL = REPO.parent / "shared" / "data" / "jsonl" / "*.jsonl.gz"
DOC_GLOBS = ["/usr/share/doc/**/*.txt", "/usr/share/doc/**/*.rst", "/usr/share/doc/**/*.md"]


def cpu_seconds() -> float:
    """CPU time of this process, all threads: contention from other jobs on the machine does not count."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_texts(patterns: list[str], max_chars: int) -> list[dict]:
    docs: list[dict] = []
    size = 0
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if path.endswith(".jsonl.gz"):
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    texts = [json.loads(line)["text"] for line in handle if line.strip()]
            else:
                try:
                    if os.path.getsize(path) < 2048:
                        continue
                    texts = [Path(path).read_text(encoding="utf-8")]
                except (OSError, UnicodeDecodeError):
                    continue
            for i, text in enumerate(texts):
                docs.append({"id": f"{path}#{i}", "text": text, "source": path, "url": None})
                size += len(text)
                if size >= max_chars:
                    return docs
    return docs


def bench_raw(texts: list[str], batch_size: int) -> tuple[int, float, float]:
    from curate.tokenizer import load, prepare

    tokenizer = load(prepare("gpt2").json)
    tokenizer.encode_batch(texts[:batch_size], add_special_tokens=False)  # warm up
    start, cpu = time.perf_counter(), cpu_seconds()
    tokens = 0
    for i in range(0, len(texts), batch_size):
        for encoding in tokenizer.encode_batch(texts[i : i + batch_size], add_special_tokens=False):
            tokens += len(encoding.ids) + 1  # + EOS, as the pipeline counts
    return tokens, time.perf_counter() - start, cpu_seconds() - cpu


def _pipeline_seconds(docs_file: str, out: str, with_stage: bool, batch_size: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one in-process run that reads the documents with the real reader.

    Reading (not ``beam.Create``) keeps the documents out of the pickled pipeline: Beam pickles a
    Create's payload with bz2 once per stage that refers to it, a cost that grows with the graph and
    so would not cancel against the smaller baseline pipeline.
    """
    import apache_beam as beam

    from curate.config import InputConfig, parse_config
    from pipelines.curation import pipeline_options
    from pipelines.readers import ReadDocuments
    from pipelines.shards import TokenizeAndShard

    config = parse_config(
        {
            "output": out,
            "runner": {"name": "direct", "workers": 1},
            "stages": {"tokenize": {"batch_size": batch_size}},
        }
    )
    stage = TokenizeAndShard(config) if with_stage else None  # tokenizer prepared before the clock
    start, cpu = time.perf_counter(), cpu_seconds()
    with beam.Pipeline(options=pipeline_options(config.runner, f"{out}/.tmp")) as pipeline:
        docs, _ = pipeline | ReadDocuments(InputConfig(), [docs_file])
        if stage is None:
            _ = docs | beam.combiners.Count.Globally()
        else:
            outputs = docs | stage
            _ = outputs.shard_infos | beam.combiners.Count.Globally()
    return time.perf_counter() - start, cpu_seconds() - cpu


def _write_docs(docs: list[dict], path: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps({"id": doc["id"], "text": doc["text"]}) + "\n")
    return path


def bench_read(out: str) -> tuple[int, float, int]:
    from curate.shards import iter_token_arrays

    shards = sorted(Path(out).glob("shards/*.parquet"))
    start = time.perf_counter()
    tokens = 0
    for shard in shards:
        for array in iter_token_arrays(shard):
            tokens += len(array)
    elapsed = time.perf_counter() - start
    return tokens, elapsed, sum(path.stat().st_size for path in shards)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", nargs="*", default=None, help="Globs of .jsonl.gz or text files.")
    parser.add_argument("--max-chars", type=int, default=24_000_000, help="Stop loading after this.")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2, help="Runs of each; the best is reported.")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "tokenize_shards.json"))
    args = parser.parse_args()

    patterns = args.texts or [str(SHARED_JSONL), *DOC_GLOBS]
    docs = load_texts(patterns, args.max_chars)
    if not docs:
        print(f"no texts found under {patterns}", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="curate-bench-tokenize-")
    runs = range(args.repeat)

    def measure(subset: list[dict], name: str) -> dict:
        texts = [d["text"] for d in subset]
        tokens, raw_wall, raw_cpu = min((bench_raw(texts, args.batch_size) for _ in runs), key=lambda r: r[2])
        out = os.path.join(work, name)
        docs_file = _write_docs(subset, os.path.join(work, f"{name}.jsonl"))
        base_wall, base_cpu = min(
            _pipeline_seconds(docs_file, out + "-base", False, args.batch_size) for _ in runs
        )
        full_wall, full_cpu = min(_pipeline_seconds(docs_file, out, True, args.batch_size) for _ in runs)
        read_tokens, read_s, shard_bytes = bench_read(out)
        assert read_tokens == tokens, (read_tokens, tokens)  # every token written, each document once
        return {
            "documents": len(subset),
            "characters": sum(len(t) for t in texts),
            "tokens": tokens,
            "raw_cpu_s": round(raw_cpu, 3),
            "raw_wall_s": round(raw_wall, 3),
            "pipeline_cpu_s": round(full_cpu, 3),
            "pipeline_wall_s": round(full_wall, 3),
            "baseline_cpu_s": round(base_cpu, 3),
            "stage_cpu_s": round(max(full_cpu - base_cpu, 1e-9), 3),
            "shard_bytes": shard_bytes,
            "read_s": read_s,
        }

    half, full = measure(docs[::2], "half"), measure(docs, "full")  # every other doc: like texts
    raw_rate = full["tokens"] / full["raw_cpu_s"]
    pipe_rate = full["tokens"] / full["stage_cpu_s"]
    extra = full["tokens"] - half["tokens"]
    raw_marginal = extra / max(full["raw_cpu_s"] - half["raw_cpu_s"], 1e-9)
    pipe_marginal = extra / max(full["stage_cpu_s"] - half["stage_cpu_s"], 1e-9)
    fixed = full["stage_cpu_s"] - full["tokens"] / pipe_marginal
    read_rate = full["tokens"] / full["read_s"]
    results = {
        "documents": full["documents"],
        "characters": full["characters"],
        "tokens": full["tokens"],
        "raw_encode_batch_tokens_per_cpu_s": round(raw_rate),
        "pipeline_stage_tokens_per_cpu_s": round(pipe_rate),
        "pipeline_vs_raw_whole_run": round(pipe_rate / raw_rate, 3),
        "raw_marginal_tokens_per_cpu_s": round(raw_marginal),
        "pipeline_marginal_tokens_per_cpu_s": round(pipe_marginal),
        "pipeline_vs_raw_marginal": round(pipe_marginal / raw_marginal, 3),
        "pipeline_fixed_cpu_s": round(fixed, 2),
        "shard_read_tokens_per_s": round(read_rate),
        "runs": {"half": half, "full": full},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    rows = [
        ("raw tokenizers.encode_batch", f"{raw_rate:,.0f} tok/cpu-s", f"{full['raw_cpu_s']:.2f} cpu-s"),
        ("pipeline tokenize+write", f"{pipe_rate:,.0f} tok/cpu-s", f"{full['stage_cpu_s']:.2f} cpu-s"),
        ("  pipeline / raw, whole run", f"{pipe_rate / raw_rate:.1%}", f"incl. ~{fixed:.1f} cpu-s fixed"),
        ("raw, per extra token", f"{raw_marginal:,.0f} tok/cpu-s", "(full - half)"),
        ("pipeline, per extra token", f"{pipe_marginal:,.0f} tok/cpu-s", "(full - half)"),
        ("  pipeline / raw, at scale", f"{pipe_marginal / raw_marginal:.1%}", "target >= 80%"),
        ("shard read (pyarrow, row groups)", f"{read_rate:,.0f} tok/s", f"{full['read_s']:.3f}s wall"),
    ]
    print(f"{full['documents']:,} documents, {full['characters']:,} chars, {full['tokens']:,} tokens (GPT-2)")
    print("tokenizer on one thread (RAYON_NUM_THREADS=1), pipeline on the in-process runner; CPU time")
    width = max(len(r[0]) for r in rows)
    for name, rate, detail in rows:
        print(f"  {name:<{width}}  {rate:>20}  {detail}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
