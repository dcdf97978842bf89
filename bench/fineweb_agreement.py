#!/usr/bin/env python3
"""Per-document agreement of curate's quality stage with datatrove 0.10.1's four FineWeb filters, on the
same texts, and the speed ratios at equal and at default extractor, each with its kept count.

    python bench/fineweb_agreement.py [--corpus bench/.corpus] [--max-docs N] [--samples 25] [--workers 2]
                                      [--speed] [--speed-docs N] [--out bench/results/fineweb_agreement.json]

datatrove runs in its own virtual environment, bench/.venv-datatrove, created from PyPI on first use
(`python -m venv bench/.venv-datatrove && bench/.venv-datatrove/bin/pip install
"datatrove[processing,io]==0.10.1" "spacy>=3.8,<4" lxml_html_clean aiohttp`, i.e. bench/pipeline.py's
DATATROVE_REQS); its language-ID model is the lid.176.ftz that curate also uses, so nothing is downloaded.

Agreement. Every record of the bench crawl (make_web_corpus.py: 7,788 records) is read by datatrove's
WarcReader and extracted once by datatrove's own Trafilatura step (favour_precision=True, its `extract`
called in the worker, without the per-page sandbox and its 1 s budget, so that which pages get a text does
not depend on how busy the machine is), then datatrove's LanguageFilter(en, 0.65) picks the English texts:
exactly what FineWeb's filters see. Each English text goes through GopherRepetitionFilter,
GopherQualityFilter, C4QualityFilter(filter_no_terminal_punct=False) and FineWebQualityFilter (C4's
rewrite feeding FineWeb's filter, as in the pipeline), recording the first failing filter's reason; curate's
quality stage (defaults) judges the same texts. The files are spread over `--workers` processes, a fresh
one per file as datatrove runs one task per file (Trafilatura's `deduplicate` cache lives in the process,
so that keeps the texts reproducible), and texts and verdicts are cached in --work, keyed by the input
files, so a rerun only re-judges curate's side. The
report: agreement with N, the disagreements counted by (curate reason, datatrove reason), the first few
printed and a sample kept with their texts, and the CPU seconds of each datatrove step.

Why not datatrove's executor here: its extractor sends every page through a sandbox process with a time
budget; on this shared 2-core machine that ran at under 200 records a minute and dropped pages that
exceeded the budget, so the set of judged texts moved from run to run. --speed times the real pipelines.

--speed runs bench/pipeline.py's contenders on the same first --speed-docs records, one after another from
this process: datatrove's FineWeb pipeline (its LocalPipelineExecutor and sandboxed Trafilatura, with a
--datatrove-timeout budget of 60 s per page instead of FineWeb's 1 s, since on a busy machine the 1 s
budget drops pages by load and the kept count would move from run to run; the dropped pages are counted),
curate with the same steps and Trafilatura, and curate's default recipe (Resiliparse, with dedup and
tokenize); --speed-only skips the agreement. Each ratio is datatrove's time over curate's, in wall time and
in CPU time, printed beside both kept counts, so a speed ratio is never read across different outputs
unawares.
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

LANGUAGES = ["en"]  # FineWeb's LanguageFilter, as in bench/pipeline.py
LANGUAGE_THRESHOLD = 0.65
SHOWN = 5  # disagreements printed in full (the JSON keeps --samples of them)


# --------------------------------------------------------------------- inside bench/.venv-datatrove

_STEPS: dict = {}


def _datatrove_steps() -> None:
    """One instance of each datatrove step per worker process (the LID model and
    spaCy's tokenizer load once per process, as in a datatrove task)."""
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )

    _STEPS["extract"] = Trafilatura(favour_precision=True)
    _STEPS["langid"] = LanguageFilter(languages=LANGUAGES, language_threshold=LANGUAGE_THRESHOLD)
    _STEPS["filters"] = [
        ("gopher_repetition", GopherRepetitionFilter()),
        ("gopher_quality", GopherQualityFilter()),
        ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
        ("fineweb", FineWebQualityFilter()),
    ]


def _datatrove_record(record: tuple[str, str, str]) -> dict:
    """Extract, identify the language of and judge one page (a failing filter records its reason)."""
    from datatrove.data import Document

    doc_id, url, html = record
    cpu: dict[str, float] = {}
    clock = time.process_time()
    text = _STEPS["extract"].extract(html) or ""
    cpu["extract"] = time.process_time() - clock
    row: dict = {"id": doc_id, "url": url, "cpu": cpu, "html_bytes": len(html)}
    if not text:
        return {**row, "outcome": "empty"}
    doc = Document(text=text, id=doc_id, metadata={"url": url})
    clock = time.process_time()
    english = _STEPS["langid"].filter(doc)
    cpu["langid"] = time.process_time() - clock
    if not english:
        return {**row, "outcome": "not_english"}
    row.update(outcome="judged", text=text, reason=None)
    for name, flt in _STEPS["filters"]:
        clock = time.process_time()
        result = flt.filter(doc)  # C4 rewrites doc.text for FineWeb, as in the pipeline
        cpu[name] = time.process_time() - clock
        ok, why = (result, None) if isinstance(result, bool) else result
        if not ok:
            row["reason"] = f"{name}:{why or 'rejected'}"
            break
    return row


def _datatrove_file(task: tuple[int, str, str]) -> dict:
    """One WARC file, read by datatrove's reader and judged page by page in this (fresh) process, as one
    datatrove task: trafilatura's `deduplicate` keeps a per-process cache of the text segments it has seen
    and empties a page whose segments came too often, so which pages get a text depends on which pages the
    same process saw before; a fresh process per file, reading in order, makes the texts reproducible."""
    from datatrove.pipeline.readers import WarcReader

    index, path, out = task
    _datatrove_steps()
    cpu, outcomes, slowest = Counter(), Counter(), []
    reader = WarcReader(str(Path(path).parent), glob_pattern=Path(path).name)
    with open(Path(out) / f"verdicts-{index:03d}.jsonl", "w", encoding="utf-8") as handle:
        for doc in reader.read_file(Path(path).name):
            row = _datatrove_record((doc.id, doc.metadata.get("url"), doc.text))
            cpu.update(row["cpu"])
            outcomes[row["outcome"]] += 1
            slowest = sorted([*slowest, (row["cpu"]["extract"], row["url"], row["html_bytes"])])[-5:]
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"cpu": cpu, "outcomes": outcomes, "slowest": slowest}


def datatrove_worker(out: Path, workers: int, files: list[str]) -> None:
    """Judges the WARC files in `workers` processes, a fresh one per file (datatrove's one task per file);
    writes verdicts-NNN.jsonl (one row per page read, in reading order) and summary.json."""
    import multiprocessing

    started, cpu, outcomes, slowest = time.perf_counter(), Counter(), Counter(), []
    context = multiprocessing.get_context("fork")
    tasks = [(index, path, str(out)) for index, path in enumerate(files)]
    with context.Pool(workers, maxtasksperchild=1) as pool:
        for done in pool.imap_unordered(_datatrove_file, tasks):
            cpu.update(done["cpu"])
            outcomes.update(done["outcomes"])
            slowest = sorted(slowest + done["slowest"])[-5:]
            elapsed = time.perf_counter() - started
            print(f"  {sum(outcomes.values())} pages, {elapsed:.0f} s", file=sys.stderr, flush=True)
    summary = {
        "pages": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "wall_s": round(time.perf_counter() - started, 1),
        "workers": workers,
        "cpu_s_by_step": {name: round(value, 1) for name, value in cpu.items()},
        "slowest_extractions": [
            {"cpu_s": round(s, 2), "url": u, "html_bytes": b} for s, u, b in slowest[::-1]
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def datatrove_extractor_cpu(out: Path, files: list[str]) -> None:
    """CPU seconds of datatrove's Trafilatura step alone (its `extract`, as the pipeline calls it inside
    the sandbox) on every page of `files`, in this one process; writes extractor_cpu.json."""
    import trafilatura  # noqa: F401  (imported before the clock starts, as a long-running worker has it)
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    extractor, cpu, pages = Trafilatura(favour_precision=True), 0.0, 0
    for path in files:
        for doc in WarcReader(str(Path(path).parent), glob_pattern=Path(path).name).read_file(
            Path(path).name
        ):
            clock = time.process_time()
            extractor.extract(doc.text)
            cpu += time.process_time() - clock
            pages += 1
    (out / "extractor_cpu.json").write_text(json.dumps({"pages": pages, "cpu_s": round(cpu, 2)}))


# ----------------------------------------------------------------------------------- curate side


def datatrove_verdicts(files: list[Path], work: Path, workers: int) -> tuple[list[dict], dict]:
    sys.path.insert(0, str(BENCH))
    from pipeline import _seed_datatrove_lid_cache, ensure_datatrove

    cache = work / "datatrove-verdicts"
    key = [[f.name, f.stat().st_size] for f in files]
    marker = cache / "done.json"
    if not (marker.exists() and json.loads(marker.read_text()) == key):
        python = ensure_datatrove()
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        env = dict(
            os.environ, HF_HUB_OFFLINE="1", DATATROVE_NO_PROGRESS="1", HOME=str(work / "datatrove-home")
        )
        _seed_datatrove_lid_cache(python, env)
        command = [str(python), str(Path(__file__).resolve()), "--datatrove-worker", str(cache)]
        command += ["--workers", str(workers), *map(str, files)]
        print(f"datatrove: reading, extracting and judging {len(files)} WARC files ...", flush=True)
        subprocess.run(command, env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        marker.write_text(json.dumps(key))
    summary = json.loads((cache / "summary.json").read_text())
    rows = []
    for part in sorted(cache.glob("verdicts-*.jsonl")):
        with open(part, encoding="utf-8") as handle:
            rows += [row for row in map(json.loads, handle) if row["outcome"] == "judged"]
    return rows, summary


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
    pairs = list(zip(docs, ours, strict=True))
    both_keep = sum(1 for d, r in pairs if d["reason"] is None and r is None)
    both_reject = sum(1 for d, r in pairs if d["reason"] is not None and r is not None)
    only_curate = [(d, r) for d, r in pairs if d["reason"] is None and r is not None]
    only_datatrove = [(d, r) for d, r in pairs if d["reason"] is not None and r is None]
    reasons = Counter(f"curate {r} / datatrove keeps" for _, r in only_curate)
    reasons.update(f"curate keeps / datatrove {d['reason']}" for d, _ in only_datatrove)
    disagreements = [
        {"id": d["id"], "url": d["url"], "curate": r, "datatrove": d["reason"], "text": d["text"][:3000]}
        for d, r in sorted(only_curate + only_datatrove, key=lambda pair: pair[0]["id"])
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
        "datatrove_reasons": dict(Counter(d["reason"] or "kept" for d in docs).most_common()),
        "disagreement_reasons": dict(reasons.most_common()),
        "disagreement_samples": disagreements[:samples],
    }


def extractor_cpu(files: list[Path], work: Path) -> dict:
    """The extractor alone, one process per side, on the same pages the timed pipelines read: datatrove's
    Trafilatura step (its venv) and curate's extract stage with trafilatura and with resiliparse (decoding
    included, as the stage does it)."""
    import trafilatura  # noqa: F401  (imported before the clock starts, as on the other side)
    from pipeline import ensure_datatrove

    from curate.filters.html_extract import extract_main_text
    from curate.pipelines.readers import read_warc

    python = ensure_datatrove()
    out = work / "extractor-cpu"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HOME=str(work / "datatrove-home"))
    command = [str(python), str(Path(__file__).resolve()), "--datatrove-extractor-cpu", str(out)]
    subprocess.run([*command, *map(str, files)], env=env, check=True, cwd=REPO)
    result = {"datatrove-trafilatura": json.loads((out / "extractor_cpu.json").read_text())}
    for extractor in ("trafilatura", "resiliparse"):
        cpu, pages = 0.0, 0
        for path in files:
            with open(path, "rb") as raw:
                for doc in read_warc(raw, str(path)):
                    if doc.get("html") is None:
                        continue
                    clock = time.process_time()
                    extract_main_text(doc["html"], doc.get("charset"), extractor)
                    cpu += time.process_time() - clock
                    pages += 1
        result[f"curate-{extractor}"] = {"pages": pages, "cpu_s": round(cpu, 2)}
    return result


def speed(files: list[Path], work: Path, workers: int, extract_timeout: float) -> dict:
    """bench/pipeline.py's contenders on the same files: datatrove's FineWeb pipeline, curate with the same
    steps and Trafilatura, curate's default recipe; ratios are datatrove's time over curate's. Each
    contender's share of CPU spent in its extractor comes from timing the extractor alone on the same
    pages (`extractor_cpu`)."""
    sys.path.insert(0, str(BENCH))
    import pipeline

    results = {}
    print("running datatrove-fineweb ...", flush=True)
    results["datatrove-fineweb"] = pipeline.run_datatrove(files, work, workers, 0, True, extract_timeout)
    results["datatrove-fineweb"].pop("texts", None)
    for name, extractor, same in (
        ("curate-trafilatura", "trafilatura", True),
        ("curate-default", "resiliparse", False),
    ):
        print(f"running {name} ...", flush=True)
        results[name] = pipeline.run_curate(files, work, workers, same, True, extractor=extractor, name=name)
    base = results["datatrove-fineweb"]
    for r in results.values():
        r["funnel"] = funnel(r)
    for name in ("curate-trafilatura", "curate-default"):
        results[name]["speed_ratio_wall"] = round(base["wall_s"] / results[name]["wall_s"], 2)
        results[name]["speed_ratio_cpu"] = round(base["cpu_s"] / results[name]["cpu_s"], 2)
    print("timing the extractors alone ...", flush=True)
    alone = extractor_cpu(files, work)
    for name, key in (
        ("datatrove-fineweb", "datatrove-trafilatura"),
        ("curate-trafilatura", "curate-trafilatura"),
        ("curate-default", "curate-resiliparse"),
    ):
        cpu = alone[key]["cpu_s"]
        results[name]["extractor_alone"] = {
            **alone[key],
            "share_of_cpu": round(cpu / results[name]["cpu_s"], 3),
        }
        results[name]["cpu_s_without_extractor"] = round(results[name]["cpu_s"] - cpu, 2)
    base_rest = results["datatrove-fineweb"]["cpu_s_without_extractor"]
    for name in ("curate-trafilatura", "curate-default"):
        results[name]["speed_ratio_cpu_without_extractor"] = round(
            base_rest / results[name]["cpu_s_without_extractor"], 2
        )
    return results


def funnel(result: dict) -> dict:
    """Pages with a text after extraction, English after language ID, kept after the rules."""
    if "step_counts" in result:  # datatrove: its steps' own counters
        counts = result["step_counts"]
        extract = next((v for k, v in counts.items() if "Trafilatura" in k), {})
        langid = next((v for k, v in counts.items() if "Language ID" in k), {})
        texts, english = extract.get("forwarded", 0), langid.get("forwarded", 0)
        timeouts = extract.get("timeout", 0)
    else:  # curate: rejections per stage in stats.json
        texts = result["docs"] - sum(result["stages"].get("extract", {}).values())
        english = texts - sum(result["stages"].get("langid", {}).values())
        timeouts = 0
    return {"texts": texts, "extract_timeouts": timeouts, "english": english, "kept": result["kept"]}


def print_report(report: dict) -> None:
    if "agreement" in report:
        print_agreement(report)
    if "speed" in report:
        print_speed(report)


def print_agreement(report: dict) -> None:
    a, dt = report["agreement"], report["datatrove"]
    print(
        f"\n{dt['pages']:,} pages read; datatrove's Trafilatura left {dt['outcomes'].get('empty', 0)} empty, "
        f"its LanguageFilter dropped {dt['outcomes'].get('not_english', 0)}; "
        f"{a['documents']:,} English texts judged by both"
    )
    print(
        f"agreement {a['agreement']:.2%} ({a['agree']:,} of {a['documents']:,}); curate rejects "
        f"{a['curate_rejects_datatrove_keeps']} that datatrove keeps and keeps "
        f"{a['curate_keeps_datatrove_rejects']} that it rejects; kept: curate {a['curate_kept']:,}, "
        f"datatrove {a['datatrove_kept']:,}"
    )
    for pair, count in list(a["disagreement_reasons"].items())[:15]:
        print(f"  {count:>5}  {pair}")
    for sample in a["disagreement_samples"][:SHOWN]:
        snippet = " ".join(sample["text"][:300].split())
        print(
            f"  - {sample['url']}: curate {sample['curate'] or 'keeps'}, "
            f"datatrove {sample['datatrove'] or 'keeps'}"
        )
        print(f"      {snippet}")
    print(
        f"CPU s: curate's quality stage {report['curate_cpu_s']}; datatrove by step "
        f"{dt['cpu_s_by_step']} ({dt['workers']} workers, {dt['wall_s']} s wall)"
    )


def print_speed(report: dict) -> None:
    s = report["speed"]
    print(f"\nspeed, the first {report['speed_docs'] or 'all'} records, {report['workers']} workers each")
    print(
        f"{'contender':<20}{'extractor':<13}{'docs':>6}{'kept':>6}{'wall s':>8}{'CPU s':>8}"
        f"{'wall ratio':>12}{'CPU ratio':>11}{'texts':>7}{'English':>9}{'extractor CPU s':>17}"
        f"{'rest CPU ratio':>16}"
    )
    for name, extractor in (
        ("datatrove-fineweb", "trafilatura"),
        ("curate-trafilatura", "trafilatura"),
        ("curate-default", "resiliparse"),
    ):
        r = s[name]
        wall = f"{r['speed_ratio_wall']}x" if "speed_ratio_wall" in r else "1x"
        cpu = f"{r['speed_ratio_cpu']}x" if "speed_ratio_cpu" in r else "1x"
        alone = r.get("extractor_alone", {})
        share = f"{alone['cpu_s']} ({alone['share_of_cpu']:.0%})" if alone else "-"
        rest_ratio = r.get("speed_ratio_cpu_without_extractor")
        rest = f"{rest_ratio}x" if rest_ratio else "1x"
        print(
            f"{name:<20}{extractor:<13}{r['docs']:>6}{r['kept']:>6}{r['wall_s']:>8}{r['cpu_s']:>8}"
            f"{wall:>12}{cpu:>11}{r['funnel']['texts']:>7}{r['funnel']['english']:>9}{share:>17}{rest:>16}"
        )
    timeouts = s["datatrove-fineweb"]["funnel"]["extract_timeouts"]
    print(
        f"datatrove's extractor dropped {timeouts} pages over its "
        f"{report['speed_datatrove_timeout_s']:g} s budget"
    )


def main() -> None:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--max-docs", type=int, default=0, help="Judge the first N records (0: all).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=25, help="Disagreements kept with their text.")
    parser.add_argument("--speed", action="store_true", help="Also time the pipelines (many minutes).")
    parser.add_argument("--speed-only", action="store_true", help="Time the pipelines, skip agreement.")
    parser.add_argument("--speed-docs", type=int, default=2000, help="Records timed by --speed (0: all).")
    parser.add_argument(
        "--datatrove-timeout",
        type=float,
        default=60.0,
        help="datatrove's per-page extraction budget under --speed, s (FineWeb's 1 s drops pages when the "
        "machine is busy, so the output would depend on the load)",
    )
    parser.add_argument("--work", type=Path, default=BENCH / ".work" / "fineweb_agreement")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "fineweb_agreement.json")
    parser.add_argument("--datatrove-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--datatrove-extractor-cpu", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_extractor_cpu:
        datatrove_extractor_cpu(args.datatrove_extractor_cpu, args.files)
        return
    if args.datatrove_worker:
        datatrove_worker(args.datatrove_worker, args.workers, args.files)
        return
    sys.path.insert(0, str(BENCH))
    import pipeline

    pipeline._become_subreaper()  # the timed pipelines' orphaned workers are counted (bench/pipeline.py)
    corpus = pipeline.ensure_corpus(args.corpus)
    args.work.mkdir(parents=True, exist_ok=True)
    files = pipeline.subset(corpus, args.max_docs, args.work / "input")[0] if args.max_docs else corpus
    report: dict = {"corpus": str(args.corpus), "max_docs": args.max_docs, "workers": args.workers}
    if not args.speed_only:
        started = time.perf_counter()
        docs, summary = datatrove_verdicts(files, args.work, args.workers)
        ours, cpu_s = curate_verdicts(docs)
        report.update(
            datatrove=summary,
            agreement=compare(docs, ours, args.samples),
            curate_cpu_s=round(cpu_s, 2),
            agreement_wall_s=round(time.perf_counter() - started, 1),
        )
    if args.speed or args.speed_only:
        report["speed_docs"] = args.speed_docs
        speed_files = corpus
        if args.speed_docs:
            speed_files = pipeline.subset(corpus, args.speed_docs, args.work / "speed-input")[0]
        report["speed_datatrove_timeout_s"] = args.datatrove_timeout
        report["speed"] = speed(speed_files, args.work, args.workers, args.datatrove_timeout)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
