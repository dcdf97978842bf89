#!/usr/bin/env python3
"""What each stage of the default recipe costs per document inside one Beam run: CPU time per stage and
the bytes each shuffle (GroupByKey) carries, the two numbers a cluster plan is sized by (deploy/SCALE.md).

    python bench/stage_costs.py [--corpus DIR] [--max-docs 2000] [--out bench/results/stage_costs.json]

One process, Beam's Fn API runner in memory, the real pipeline (`curation.build`) on real HTML pages
(`../shared/bench/make_web_corpus.py`, built on first use, as bench/pipeline.py). Beam's own monitoring
reports, per transform, the milliseconds spent processing bundles, and per PCollection the element count
and the encoded size of sampled elements; the size of a shuffle is its input PCollection's element count
times the mean sampled encoded size. Times are per stage (the transform's first path component).
"""

from __future__ import annotations

import argparse
import json
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
    from curate.pipelines.runner import pipeline_options

    config = parse_config({"input": files, "output": out, "runner": {"name": "direct", "workers": 1}})
    layout = curation.Layout(out)
    pipeline = beam.Pipeline(options=pipeline_options(config.runner, layout.path(".work", "beam-temp")))
    curation.build(pipeline, config, files, layout, curation.enabled_stages(config, Versions()))
    started = time.process_time()
    result = pipeline.run()
    result.wait_until_finish()
    cpu = time.process_time() - started
    stats = curation.read_json_lines(layout.path(".work", curation.STATS_FILE))
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--max-docs", type=int, default=2000, help="Use the first N records (0: all).")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "stage_costs.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="curate-stage-costs-"))
    files, docs = subset(ensure_corpus(args.corpus), args.max_docs, work / "input")
    proto, infos, cpu, stats = run_once([str(f) for f in files], str(work / "out"))
    stage_ms, shuffles = measure(proto, infos)
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
    result = {
        "command": f"python bench/stage_costs.py --max-docs {args.max_docs}",
        "documents": read,
        "cpu_s": round(cpu, 2),
        "stage_sampled_ms": {k: round(v, 1) for k, v in stage_ms.items()},
        "stage_cpu_ms_per_doc": cpu_ms_per_doc,
        "shuffles": shuffles,
        "shuffle_bytes_per_doc": round(total / read, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
