"""Throughput of each document filter alone, on one core, on real extracted web pages.

    python -m bench.filters [--warc 'bench/.corpus/*.warc.gz'] [--max-docs 2000] [--min-seconds 3]
                            [--kenlm-model model.binary] [--json bench/results/filters.json] [--memory]

Every module under filters/ that has a `stage_spec` is measured (a new filter shows up on its own), with
its recipe defaults plus the variants below. Texts are the main text of real pages: by default the WARC
and JSONL samples in ../shared/data; `--warc` takes a crawl such as make_web_corpus.py's. Documents carry
`lang` from a langid pass first, as in the pipeline. Throughput is documents per CPU-second of this
process (pinned to one core), so it stays comparable on a busy machine; model loading is timed apart.
The perplexity filter needs a KenLM model: `--kenlm-model`, else one is trained on the JSONL samples; the
classifier a fastText model: `--classifier-model`, else `curate classifier train` makes one (the JSONL
samples against the pages the quality rules reject). Decontamination indexes the Jigsaw sample's comments.

`--memory` also measures what each stage adds to a worker process: each filter runs in a forked child of
this process (the texts and the interpreter already resident), which reports its resident memory after
loading the filter (models, lists, tables) and its peak while filtering every text once in the pipeline's
batches; both are growth over the child's resident size at the fork.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BATCH = 256  # the pipeline's default batch size for filter stages


def variants(models: dict[str, str | None]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Extra configurations worth timing, per stage; others run with their defaults."""
    ldnoobw = {
        p.name: str(p) for p in sorted((DATA / "blocklists" / "ldnoobw").iterdir()) if p.name != "LICENSE"
    }
    kenlm_model, classifier_model, eval_file = models["kenlm"], models["classifier"], models["eval_set"]
    return {
        "quality": [("quality", {}), ("quality (C4 line removal)", {"c4": {"remove_lines": True}})],
        "classifier": [
            ("classifier (fastText, 1 model)", {"models": [{"name": "q", "path": classifier_model}]})
        ]
        if classifier_model
        else [],
        "decontaminate": [
            (
                "decontaminate (13-grams, Jigsaw eval set)",
                {"eval_sets": [{"name": "jigsaw", "paths": [eval_file], "fields": ["comment_text"]}]},
            ),
            (
                "decontaminate (lines mode)",
                {
                    "eval_sets": [{"name": "jigsaw", "paths": [eval_file], "fields": ["comment_text"]}],
                    "mode": "lines",
                },
            ),
        ],
        "pii": [("pii (emails, IPs)", {}), ("pii (+ phones, cards)", {"phones": True, "cards": True})],
        "url_filter": [("url_filter (LDNOOBW en in URLs)", {"banned_words": [ldnoobw["en"]]})],
        "toxicity": [
            ("toxicity (classifier)", {}),
            ("toxicity (classifier + LDNOOBW by lang)", {"wordlists": ldnoobw}),
        ],
        "perplexity": [("perplexity (KenLM 5-gram)", {"model": kenlm_model})] if kenlm_model else [],
    }


def load_texts(warc_glob: str | None, max_docs: int) -> list[dict[str, Any]]:
    """Real pages as pipeline documents: extracted WARC responses, and JSONL texts by default."""
    from curate.filters.html_extract import extract_main_text, is_html_content_type
    from curate.pipelines.readers import InputConfig, read_file

    paths = (
        sorted(glob.glob(warc_glob)) if warc_glob else sorted(glob.glob(str(DATA / "crawl" / "*.warc.gz")))
    )
    docs: list[dict[str, Any]] = []
    for path in paths:
        for doc in read_file(path, InputConfig()):
            html = doc.pop("html", None)
            if html is not None and is_html_content_type(doc.pop("content_type", None)):
                doc["text"] = extract_main_text(html, doc.pop("charset", None))
            if (doc.get("text") or "").strip():
                docs.append(doc)
            if len(docs) >= max_docs:
                return docs
    if not warc_glob:
        for path in sorted((DATA / "jsonl").glob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                docs += [{"url": r.get("url"), "text": r["text"]} for r in map(json.loads, handle)]
    return docs[:max_docs]


def _languages(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from curate.filters.langid import LangIdConfig, make_filter

    langid = make_filter(LangIdConfig(languages=None, min_score=0.0))
    return [scored for i in range(0, len(docs), BATCH) for scored in langid.annotate(docs[i : i + BATCH])]


def languages_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each document's `lang` annotations, as the pipeline's langid stage gives them, computed in a child
    process so that this one never holds the language model (the memory measurement would miss it)."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(_languages, (docs,))


def filter_specs(models: dict[str, str | None]) -> list[tuple[str, Any]]:
    """(label, FilterSpec) for every filter stage in pipeline order (a new filter shows up on its own);
    the classifier stage is Beam around a filter (its run-wide pass aside), which is measured too."""
    from curate.filters import classifier
    from curate.filters.base import FilterStageDef
    from curate.pipelines.stage_order import DOCUMENT_STAGES

    out = []
    extra = variants(models)
    for stage in DOCUMENT_STAGES:
        if isinstance(stage, FilterStageDef):
            spec = stage.spec
        elif stage.name == "classifier":
            spec = classifier.stage_spec
        else:
            continue
        for label, overrides in extra.get(stage.name, [(stage.name, {})]):
            cfg = stage.config(enabled=True, **overrides)
            out.append((label, spec(cfg)))
        if stage.name in ("perplexity", "classifier") and not extra[stage.name]:
            out.append((f"{stage.name} (no model: skipped)", None))
    return out


def measure(spec: Any, docs: list[dict[str, Any]], min_seconds: float) -> dict[str, float]:
    """Model load time, then annotate+decide over batches until `min_seconds` of CPU have passed."""
    started = time.process_time()
    filt = spec.make()
    load = time.process_time() - started
    processed = chars = kept = passes = 0
    started, wall = time.process_time(), time.perf_counter()
    while passes == 0 or time.process_time() - started < min_seconds:
        for i in range(0, len(docs), BATCH):
            batch = docs[i : i + BATCH]
            for scored, doc in zip(filt.annotate(batch), batch, strict=True):
                kept += passes == 0 and filt.decide(scored, doc) is None
            processed += len(batch)
            chars += sum(len(d["text"]) for d in batch)
        passes += 1
    cpu = time.process_time() - started
    return {
        "load_s": load,
        "docs_per_s": processed / cpu,
        "mb_per_s": chars / cpu / 1e6,
        "kept_share": kept / len(docs),
        "passes": passes,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu,
    }


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _memory_in_child(spec: Any, docs: list[dict[str, Any]], answer: Any) -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # resets the peak (VmHWM) to the current resident size
    base = _proc_status_kb("VmRSS")
    filt = spec.make()
    loaded = _proc_status_kb("VmRSS")
    for i in range(0, len(docs), BATCH):
        batch = docs[i : i + BATCH]
        for scored, doc in zip(filt.annotate(batch), batch, strict=True):
            filt.decide(scored, doc)
    answer.send(
        {
            "base_mb": base / 1024,
            "loaded_mb": (loaded - base) / 1024,
            "peak_mb": (_proc_status_kb("VmHWM") - base) / 1024,
        }
    )


def measure_memory(spec: Any, docs: list[dict[str, Any]]) -> dict[str, float]:
    """Resident memory a filter adds to a worker: after loading, and at its peak over every text once."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_memory_in_child, args=(spec, docs, send))
    child.start()
    result = receive.recv()
    child.join()
    return result


def train_model(out: Path) -> str | None:
    from curate.core.errors import CurateError
    from curate.lm import train

    try:
        train(sorted((DATA / "jsonl").glob("*.jsonl.gz")), out / "bench.binary", order=5)
    except CurateError as error:
        print(f"perplexity: no model ({error})", file=sys.stderr)
        return None
    return str(out / "bench.binary")


def train_classifier(docs: list[dict[str, Any]], out: Path) -> str | None:
    """A quality classifier as `curate classifier train` makes one: the CCNet "head" JSONL documents
    against pages of the benchmark's texts that the quality rules reject."""
    from curate.classifier_train import train
    from curate.core.errors import CurateError
    from curate.filters.quality import QualityConfig, QualityFilter

    rules = QualityFilter(QualityConfig())
    rejected = [d for d, a in zip(docs, rules.annotate(docs), strict=True) if rules.decide(a, d)]
    negatives = out / "negatives.jsonl"
    negatives.write_text("".join(json.dumps({"text": d["text"]}) + "\n" for d in rejected), encoding="utf-8")
    try:
        train(
            [str(p) for p in sorted((DATA / "jsonl").glob("*.jsonl.gz"))],
            [str(negatives)],
            str(out / "q.bin"),
        )
    except CurateError as error:
        print(f"classifier: no model ({error})", file=sys.stderr)
        return None
    return str(out / "q.bin")


def eval_set(out: Path) -> str:
    """A real evaluation file for decontamination: the Jigsaw sample's comments as JSONL."""
    import csv

    path = out / "jigsaw.jsonl"
    with open(DATA / "toxicity" / "jigsaw-sample-train.csv", newline="", encoding="utf-8") as handle:
        rows = [{"comment_text": row["comment_text"]} for row in csv.DictReader(handle)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warc", help="Glob of WARC files (default: the samples in ../shared/data).")
    parser.add_argument("--max-docs", type=int, default=2000)
    parser.add_argument("--min-seconds", type=float, default=3.0, help="CPU seconds per filter, at least.")
    parser.add_argument("--kenlm-model", help="KenLM model for the perplexity filter.")
    parser.add_argument("--classifier-model", help="fastText quality model (positive label __label__hq).")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "filters.json")
    parser.add_argument("--memory", action="store_true", help="Also each stage's resident memory (Linux).")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the pipeline's workers

    docs = load_texts(args.warc, args.max_docs)
    for doc, scored in zip(docs, languages_of(docs), strict=True):
        doc.update(scored)
    mb = sum(len(d["text"]) for d in docs) / 1e6
    print(f"{len(docs)} documents, {mb:.1f} M characters, {len({d['lang'] for d in docs})} languages")

    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "kenlm": args.kenlm_model or train_model(Path(tmp)),
            "classifier": args.classifier_model or train_classifier(docs, Path(tmp)),
            "eval_set": eval_set(Path(tmp)),
        }
        results = []
        memory_head = f"{'load MB':>9}{'peak MB':>9}" if args.memory else ""
        print(f"{'filter':<44}{'load s':>8}{'docs/s':>10}{'MB/s':>8}{'kept':>7}{memory_head}")
        for label, spec in filter_specs(models):
            if spec is None:
                print(f"{label:<44}")
                continue
            r = measure(spec, docs, args.min_seconds)
            memory = ""
            if args.memory:
                r.update(measure_memory(spec, docs))
                memory = f"{r['loaded_mb']:>9.0f}{r['peak_mb']:>9.0f}"
            results.append({"filter": label, **r})
            print(
                f"{label:<44}{r['load_s']:>8.2f}{r['docs_per_s']:>10.0f}{r['mb_per_s']:>8.2f}{r['kept_share']:>7.0%}"
                + memory
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    corpus = {"warc": args.warc or "../shared/data samples", "documents": len(docs), "mchars": mb}
    args.json.write_text(json.dumps({"corpus": corpus, "batch": BATCH, "results": results}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
