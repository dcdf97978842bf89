#!/usr/bin/env python3
"""Per-document agreement of curate's quality stage with datatrove 0.10.1's four FineWeb filters, on the
same texts, and the speed ratios at equal and at default extractor.

    python bench/fineweb_agreement.py [--corpus bench/.corpus] [--max-docs N] [--samples 25]
                                      [--speed] [--workers 2] [--out bench/results/fineweb_agreement.json]

Texts: the bench crawl (make_web_corpus.py, 7,788 records) read, extracted with Trafilatura and language-
filtered by datatrove itself (WarcReader -> Trafilatura(favour_precision=True) -> LanguageFilter(en,
0.65)), i.e. exactly what FineWeb's filters see (the extractor's per-page time budget is raised from 1 s
to 60 s so that a busy machine does not drop pages). Inside bench/.venv-datatrove each text then goes through
GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter(filter_no_terminal_punct=False) and
FineWebQualityFilter (C4's rewrite feeding FineWeb's filter, as in the pipeline), recording the first
failing filter's reason. curate's quality stage (defaults) judges the same texts. The report: agreement,
the disagreements counted by (curate reason, datatrove reason), and a sample of them with their texts.

--speed also runs bench/pipeline.py's contenders on the same WARC files: curate's default recipe
(Resiliparse), curate with Trafilatura and datatrove's FineWeb pipeline, each with its kept count, so a
speed ratio is never read across different outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

# datatrove's reason names -> the curate rule that implements the same check (for reading the table)
DATATROVE_FILTERS = ("gopher_repetition", "gopher_quality", "c4", "fineweb")


# --------------------------------------------------------------------- inside bench/.venv-datatrove


def datatrove_worker(out: Path, workers: int, files: list[str]) -> None:
    """FineWeb's reader, extractor and language filter, then the four filters per document, recording
    text and verdict (a document failing a filter is recorded, not dropped)."""
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

    def judge(data, rank: int = 0, world_size: int = 1):
        filters = [
            ("gopher_repetition", GopherRepetitionFilter()),
            ("gopher_quality", GopherQualityFilter()),
            ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
            ("fineweb", FineWebQualityFilter()),
        ]
        with open(out / f"verdicts-{rank:03d}.jsonl", "w", encoding="utf-8") as handle:
            for doc in data:
                text = doc.text
                verdict = {"id": doc.id, "url": doc.metadata.get("url"), "text": text, "reason": None}
                for name, flt in filters:
                    result = flt.filter(doc)  # C4 rewrites doc.text for FineWeb, as in the pipeline
                    ok, why = (result, None) if isinstance(result, bool) else result
                    if not ok:
                        verdict["reason"] = f"{name}:{why or 'rejected'}"
                        break
                handle.write(json.dumps(verdict, ensure_ascii=False) + "\n")
                yield doc

    def preload(data, rank: int = 0, world_size: int = 1):
        # The extractor forks a sandbox process with a 1 s budget per page; on a busy machine importing
        # trafilatura in the child alone can exceed it, and every page then times out. Imported here, the
        # fork inherits it (what a long-running datatrove worker has anyway after its first page).
        import trafilatura  # noqa: F401

        yield from data

    pipeline = [
        WarcReader(folder, glob_pattern="*.warc.gz"),
        preload,
        # FineWeb's extractor settings; a 60 s budget instead of 1 s, so that which pages reach the filters
        # does not depend on how busy the machine is (the texts are the same).
        Trafilatura(favour_precision=True, timeout=60),
        LanguageFilter(languages=["en"], language_threshold=0.65),
        judge,
    ]
    LocalPipelineExecutor(
        pipeline, tasks=len(files), workers=workers, logging_dir=str(out / "logs"), skip_completed=False
    ).run()


# ----------------------------------------------------------------------------------- curate side


def datatrove_verdicts(files: list[Path], work: Path, workers: int) -> list[dict]:
    sys.path.insert(0, str(BENCH))
    from pipeline import _seed_datatrove_lid_cache, ensure_datatrove

    cache = work / "datatrove-verdicts"
    marker = cache / "done.json"
    names = [f.name for f in files]
    if not (marker.exists() and json.loads(marker.read_text()) == names):
        python = ensure_datatrove()
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        env = dict(
            os.environ, HF_HUB_OFFLINE="1", DATATROVE_NO_PROGRESS="1", HOME=str(work / "datatrove-home")
        )
        _seed_datatrove_lid_cache(python, env)
        command = [str(python), str(Path(__file__).resolve()), "--datatrove-worker", str(cache)]
        command += ["--workers", str(workers), *map(str, files)]
        print(f"datatrove: extracting and judging {len(files)} WARC files ...", flush=True)
        subprocess.run(command, env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        marker.write_text(json.dumps(names))
    rows = [
        json.loads(line) for p in sorted(cache.glob("verdicts-*.jsonl")) for line in p.open(encoding="utf-8")
    ]
    return sorted(rows, key=lambda r: r["id"])


def curate_verdicts(docs: list[dict]) -> tuple[list[str | None], float]:
    from curate.filters.quality import QualityConfig, QualityFilter

    rules = QualityFilter(QualityConfig())
    started = time.process_time()
    reasons: list[str | None] = []
    for start in range(0, len(docs), 256):
        batch = [{"text": d["text"], "lang": "en"} for d in docs[start : start + 256]]
        for doc, signals in zip(batch, rules.annotate(batch), strict=True):
            reasons.append(rules.decide(signals, doc))
    return reasons, time.process_time() - started


def compare(docs: list[dict], ours: list[str | None], samples: int) -> dict:
    both_keep = sum(1 for d, r in zip(docs, ours, strict=True) if d["reason"] is None and r is None)
    both_reject = sum(1 for d, r in zip(docs, ours, strict=True) if d["reason"] is not None and r is not None)
    only_curate = [(d, r) for d, r in zip(docs, ours, strict=True) if d["reason"] is None and r is not None]
    only_datatrove = [
        (d, r) for d, r in zip(docs, ours, strict=True) if d["reason"] is not None and r is None
    ]
    pairs = Counter(f"curate {r} / datatrove keeps" for _, r in only_curate)
    pairs.update(f"curate keeps / datatrove {d['reason']}" for d, _ in only_datatrove)
    disagreements = [
        {"id": d["id"], "url": d["url"], "curate": r, "datatrove": d["reason"], "text": d["text"][:3000]}
        for d, r in only_curate + only_datatrove
    ]
    return {
        "documents": len(docs),
        "agree": both_keep + both_reject,
        "agreement": round((both_keep + both_reject) / len(docs), 4) if docs else None,
        "both_keep": both_keep,
        "both_reject": both_reject,
        "curate_rejects_datatrove_keeps": len(only_curate),
        "curate_keeps_datatrove_rejects": len(only_datatrove),
        "datatrove_kept": sum(1 for d in docs if d["reason"] is None),
        "curate_kept": sum(1 for r in ours if r is None),
        "disagreement_reasons": dict(pairs.most_common()),
        "disagreement_samples": disagreements[:samples],
    }


def speed(files: list[Path], work: Path, workers: int) -> dict:
    """bench/pipeline.py's contenders: curate default (Resiliparse), curate same steps with Trafilatura,
    datatrove FineWeb; the ratios are datatrove's wall time over curate's, each with kept counts."""
    sys.path.insert(0, str(BENCH))
    import pipeline

    results = {}
    for name, extractor, same in (
        ("curate-default", "resiliparse", False),
        ("curate-trafilatura", "trafilatura", True),
    ):
        print(f"running {name} ...", flush=True)
        results[name] = pipeline.run_curate(files, work, workers, same, True, extractor=extractor, name=name)
    print("running datatrove-fineweb ...", flush=True)
    results["datatrove-fineweb"] = pipeline.run_datatrove(files, work, workers, 0, True)
    results["datatrove-fineweb"].pop("texts", None)
    base = results["datatrove-fineweb"]["wall_s"]
    for name in ("curate-default", "curate-trafilatura"):
        results[name]["speed_ratio_wall"] = round(base / results[name]["wall_s"], 2)
    return results


def print_report(report: dict) -> None:
    a = report["agreement"]
    print(
        f"\n{a['documents']:,} documents (Trafilatura + language ID by datatrove): "
        f"agreement {a['agreement']:.2%} "
        f"({a['agree']:,}); curate rejects {a['curate_rejects_datatrove_keeps']} datatrove keeps, keeps "
        f"{a['curate_keeps_datatrove_rejects']} it rejects; kept: curate {a['curate_kept']:,}, "
        f"datatrove {a['datatrove_kept']:,}"
    )
    for pair, count in list(a["disagreement_reasons"].items())[:15]:
        print(f"  {count:>5}  {pair}")
    print(f"curate quality stage: {report['curate_cpu_s']} CPU s for {a['documents']:,} documents")
    if "speed" in report:
        s = report["speed"]
        print(f"\n{'contender':<22}{'extractor':<14}{'docs':>7}{'kept':>7}{'wall s':>9}{'vs datatrove':>14}")
        for name, extractor in (
            ("curate-default", "resiliparse"),
            ("curate-trafilatura", "trafilatura"),
            ("datatrove-fineweb", "trafilatura"),
        ):
            r = s[name]
            ratio = f"{r['speed_ratio_wall']}x" if "speed_ratio_wall" in r else "1x"
            print(f"{name:<22}{extractor:<14}{r['docs']:>7}{r['kept']:>7}{r['wall_s']:>9}{ratio:>14}")


def main() -> None:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--max-docs", type=int, default=0, help="Use the first N records (0: all).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=25, help="Disagreements kept with their text.")
    parser.add_argument("--speed", action="store_true", help="Also time the pipelines (several minutes).")
    parser.add_argument("--work", type=Path, default=BENCH / ".work" / "fineweb_agreement")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "fineweb_agreement.json")
    parser.add_argument("--datatrove-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_worker:
        datatrove_worker(args.datatrove_worker, args.workers, args.files)
        return
    sys.path.insert(0, str(BENCH))
    import pipeline

    files = pipeline.ensure_corpus(args.corpus)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.max_docs:
        files, _ = pipeline.subset(files, args.max_docs, args.work / "input")
    docs = datatrove_verdicts(files, args.work, args.workers)
    ours, cpu_s = curate_verdicts(docs)
    report: dict = {
        "corpus": str(args.corpus),
        "max_docs": args.max_docs,
        "agreement": compare(docs, ours, args.samples),
        "curate_cpu_s": round(cpu_s, 2),
    }
    if args.speed:
        report["speed"] = speed(files, args.work, args.workers)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
