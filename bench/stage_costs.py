#!/usr/bin/env python3
"""What each stage of the default recipe costs per document inside one Beam run: CPU time per stage and
the bytes each shuffle (GroupByKey) carries, the two numbers a cluster plan is sized by (deploy/SCALE.md).

    python bench/stage_costs.py [--corpus DIR] [--max-docs 2000] [--out bench/results/stage_costs.json]

It then times each stage's bare kernel on the same inputs the stage saw in that run (Resiliparse's decode
and extraction of the same HTML, fastText's `predict` on the same strings, the tokenizer's
`encode_batch_fast` on the kept texts, the MinHash signature kernel on the texts that reached MinHash),
and prints the stage's CPU per document it processed next to its kernel's: the overhead is the ratio.

One process, Beam's Fn API runner in memory, the real pipeline (`curation.build`) on real HTML pages
(`../shared/bench/make_web_corpus.py`, built on first use, as bench/pipeline.py). Beam's own monitoring
reports, per transform, the milliseconds spent processing bundles, and per PCollection the element count
and the encoded size of sampled elements; the size of a shuffle is its input PCollection's element count
times the mean sampled encoded size. Times are per stage (the transform's first path component).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.pipeline import ensure_corpus, subset  # noqa: E402

TOTAL_MSECS = "beam:metric:ptransform_execution_time:total_msecs:v1"  # start + process + finish


def run_once(files: list[str], out: str):
    import apache_beam as beam

    from curate.config import parse_config
    from curate.pipelines import curation
    from curate.pipelines.dedup_index import Versions
    from curate.pipelines.runner import pipeline_options, runner_for

    config = parse_config({"input": files, "output": out, "runner": {"name": "direct", "workers": 1}})
    layout = curation.Layout(out)
    options = pipeline_options(config.runner, layout.path(".work", "beam-temp"))
    pipeline = beam.Pipeline(runner=runner_for(config.runner, options), options=options)
    curation.build(pipeline, config, files, layout, curation.enabled_stages(config, Versions()))
    started = time.process_time()
    result = pipeline.run()
    result.wait_until_finish()
    cpu = time.process_time() - started
    stats = curation.read_side_rows(layout)[curation.STATS]
    return pipeline.to_runner_api(), result.monitoring_infos(), cpu, stats


def measure(proto, infos) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    from apache_beam.metrics import monitoring_infos as mi

    shuffles = {
        next(iter(t.inputs.values())): t.unique_name
        for t in proto.components.transforms.values()
        if t.spec.urn == "beam:transform:group_by_key:v1"
    }
    stage_ms: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for info in infos:
        if info.urn == TOTAL_MSECS:
            name = info.labels.get(mi.PTRANSFORM_LABEL, "")  # the transform's unique name
            stage_ms[name.split("/", 1)[0]] += mi.extract_metric_result_map_value(info)
        pcollection = info.labels.get(mi.PCOLLECTION_LABEL)
        if pcollection in shuffles and info.urn == mi.ELEMENT_COUNT_URN:
            counts[pcollection] = counts.get(pcollection, 0) + mi.extract_metric_result_map_value(info)
        if pcollection in shuffles and info.urn == mi.SAMPLED_BYTE_SIZE_URN:
            value = mi.extract_metric_result_map_value(info)
            count, total = sizes.get(pcollection, (0, 0))
            sizes[pcollection] = (count + value.count, total + value.sum)
    shuffle_bytes = {}
    for pcollection, label in shuffles.items():
        sampled, total = sizes.get(pcollection, (0, 0))
        elements = counts.get(pcollection, 0)
        mean = total / sampled if sampled else 0.0
        shuffle_bytes[label] = {
            "elements": elements,
            "mean_bytes": round(mean, 1),
            "bytes": round(elements * mean),
        }
    return dict(stage_ms), shuffle_bytes


def stage_inputs(out: Path) -> dict[str, list[str]]:
    """Texts each stage saw in the run: a stage sees every document not rejected before it (rejected rows
    carry the stage that rejected them; kept documents went through every stage)."""
    import pyarrow.parquet as pq

    from curate.pipelines.stage_order import DOCUMENT_STAGES

    order = [stage.name for stage in DOCUMENT_STAGES]
    reached: dict[str, list[str]] = {name: [] for name in order}
    tables = [(path, True) for path in sorted((out / "rejected").glob("*.parquet"))]
    tables += [(path, False) for path in sorted((out / "documents").glob("*.parquet"))]
    for path, rejected in tables:
        columns = ["text", "stage"] if rejected else ["text"]
        for row in pq.read_table(path, columns=columns).to_pylist():
            last = order.index(row["stage"]) if rejected and row["stage"] in order else len(order) - 1
            for name in order[: last + 1]:
                reached[name].append(row.get("text") or "")
    reached["tokenize"] = []
    for path in sorted((out / "documents").glob("*.parquet")):
        reached["tokenize"] += [
            text or "" for text in pq.read_table(path, columns=["text"]).column(0).to_pylist()
        ]
    return reached


def _cpu(work, runs: int = 1) -> float:
    """Median CPU seconds of ``runs`` calls (a kernel is timed as often as the pipeline runs: one timing
    moved by up to ±30% here)."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return statistics.median(times)


def kernel_costs(
    files: list[Path], reached: dict[str, list[str]], runs: int = 1
) -> dict[str, dict[str, float]]:
    """CPU ms per document of each stage's native kernel alone, on the texts the stage saw (the median
    of ``runs`` timings)."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from curate.core.tokenizer import gpt2_tokenizer
    from curate.filters import text_units
    from curate.filters.dedup_text import Normalization, shingle_hashes
    from curate.filters.gopher import DUP_NGRAMS, TOP_NGRAMS
    from curate.filters.html_extract import _resiliparse, decode_html
    from curate.filters.langid import default_model_path, load_fasttext, one_line
    from curate.filters.minhash import MinHasher
    from curate.filters.native_words import ngram_chars

    bodies = []
    for path in files:
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle, record_types=WarcRecordType.response):
                bodies.append(record.reader.read())
    costs: dict[str, dict[str, float]] = {}

    def note(stage: str, kernel: str, n: int, cpu: float) -> None:
        costs[stage] = {
            "kernel": kernel,
            "documents": n,
            "kernel_ms_per_doc": round(1000 * cpu / max(n, 1), 3),
        }

    note(
        "extract",
        "resiliparse decode + extract_plain_text",
        len(bodies),
        _cpu(lambda: [_resiliparse(decode_html(body)) for body in bodies], runs),
    )
    model = load_fasttext(default_model_path(), "langid.model")
    texts = reached.get("langid", [])
    note(
        "langid",
        "fastText predict (one call, same strings)",
        len(texts),
        _cpu(lambda: model.predict([one_line(t) for t in texts], k=1), runs),
    )
    texts = reached.get("quality", [])
    splitter, ngrams = text_units._NATIVE, ngram_chars()
    if splitter is not None and ngrams is not None:
        note(
            "quality",
            "curate_native document_units + ngram_chars (tokens, words, line counts, n-grams)",
            len(texts),
            _cpu(
                lambda: [ngrams(splitter.document_units(t)[0], TOP_NGRAMS, DUP_NGRAMS) for t in texts],
                runs,
            ),
        )
    else:
        note(
            "quality",
            "no native kernel (curate_native not built): str.split of the text (the floor)",
            len(texts),
            _cpu(lambda: [t.split() for t in texts], runs),
        )
    texts = reached.get("dedup_minhash", [])
    hasher, normalization = MinHasher(128, 1), Normalization()
    note(
        "dedup_minhash",
        "shingle hashes + MinHash signatures (numpy)",
        len(texts),
        _cpu(
            lambda: hasher.signatures([shingle_hashes(normalization.words(t), 5, "word") for t in texts]),
            runs,
        ),
    )
    texts = reached.get("tokenize", [])
    tokenizer = gpt2_tokenizer()
    note(
        "tokenize",
        "tokenizers encode_batch_fast",
        len(texts),
        _cpu(lambda: tokenizer.encode_batch_fast(texts), runs),
    )
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--max-docs", type=int, default=2000, help="Use the first N records (0: all).")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "stage_costs.json")
    parser.add_argument("--runs", type=int, default=3, help="Pipeline runs; per-stage figures are medians.")
    parser.add_argument(
        "--sampling-ms",
        type=int,
        default=5,
        help="Beam's state-sampling period (its default, 200 ms, leaves a stage's share noisy: ±50%%).",
    )
    args = parser.parse_args()

    # Which step is running is sampled by Beam's state sampler; a finer period than its default makes
    # each stage's share of a ~20 s run a count of thousands of samples instead of about a hundred.
    from apache_beam.runners.worker import statesampler

    statesampler.StateSampler.__init__.__defaults__ = (args.sampling_ms,)
    work = Path(tempfile.mkdtemp(prefix="curate-stage-costs-"))
    files, docs = subset(ensure_corpus(args.corpus), args.max_docs, work / "input")
    runs = []
    for run in range(args.runs):
        shutil.rmtree(work / "out", ignore_errors=True)
        proto, infos, cpu, stats = run_once([str(f) for f in files], str(work / "out"))
        stage_ms, shuffles = measure(proto, infos)
        runs.append((cpu, stage_ms))
        print(f"run {run + 1}: {cpu:.2f} CPU-s", flush=True)
    cpus = sorted(cpu for cpu, _ in runs)
    cpu = statistics.median(cpus)
    # each stage's median share of the sampled time across the runs
    stage_ms = {
        stage: statistics.median(ms.get(stage, 0.0) / (sum(ms.values()) or 1.0) for _, ms in runs)
        for stage in {stage for _, ms in runs for stage in ms}
    }
    read = sum(
        n for stage, key, n in stats if stage == "read" and (key == "out" or key.startswith("rejected:"))
    )
    # Beam samples which step is running (wall time, exclusive of other steps); each stage's share of
    # the sampled time, times the run's CPU time, is its CPU (one process, so wall ~ CPU plus waiting).
    sampled = sum(stage_ms.values()) or 1.0
    cpu_ms_per_doc = {
        stage: round(1000 * cpu * ms / sampled / read, 3)
        for stage, ms in sorted(stage_ms.items(), key=lambda kv: -kv[1])
    }
    print(f"{read:,} documents, {cpu:.1f} CPU-s in the run ({1000 * cpu / read:.2f} ms per document)")
    print(f"\n  {'stage':<28}{'share':>8}{'CPU ms per doc':>16}")
    for stage, per_doc in cpu_ms_per_doc.items():
        print(f"  {stage:<28}{stage_ms[stage] / sampled:>8.1%}{per_doc:>16.3f}")
    print(f"\n  {'shuffle (GroupByKey)':<60}{'elements':>10}{'bytes/elem':>11}{'bytes/doc':>10}")
    for label, entry in sorted(shuffles.items(), key=lambda kv: -kv[1]["bytes"]):
        n, size, per_doc = entry["elements"], entry["mean_bytes"], entry["bytes"] / read
        print(f"  {label[:60]:<60}{n:>10,}{size:>11,.0f}{per_doc:>10,.1f}")
    total = sum(e["bytes"] for e in shuffles.values())
    print(f"\n  all shuffles: {total / read:,.0f} bytes per input document")
    stage_in = {stage: n for stage, key, n in stats if key == "in"}
    kernels = kernel_costs(files, stage_inputs(work / "out"), args.runs)
    print(f"\n  {'stage':<15}{'docs in':>9}{'stage ms/doc':>14}{'kernel ms/doc':>15}{'ratio':>8}  kernel")
    for stage, entry in kernels.items():
        n_in = stage_in.get(stage, 0)
        stage_ms_doc = 1000 * cpu * stage_ms.get(stage, 0.0) / sampled / n_in if n_in else 0.0
        entry["stage_in"] = n_in
        entry["stage_ms_per_doc"] = round(stage_ms_doc, 3)
        entry["ratio"] = (
            round(stage_ms_doc / entry["kernel_ms_per_doc"], 2) if entry["kernel_ms_per_doc"] else None
        )
        ratio = f"{entry['ratio']:.2f}" if entry["ratio"] is not None else "-"
        print(
            f"  {stage:<15}{n_in:>9,}{stage_ms_doc:>14.3f}{entry['kernel_ms_per_doc']:>15.3f}{ratio:>8}  "
            f"{entry['kernel']}"
        )
    result = {
        "command": f"python bench/stage_costs.py --max-docs {args.max_docs}",
        "kernels": kernels,
        "documents": read,
        "runs": args.runs,
        "sampling_ms": args.sampling_ms,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_run": [round(c, 2) for c in cpus],
        "stage_share_of_sampled_time": {k: round(v / sampled, 4) for k, v in stage_ms.items() if v},
        "stage_cpu_ms_per_doc": cpu_ms_per_doc,
        "shuffles": shuffles,
        "shuffle_bytes_per_doc": round(total / read, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
