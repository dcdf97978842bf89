#!/usr/bin/env python3
"""The Rust splitter (native/, filters/native_words.py) against the pure-Python one on the whole bench crawl:
equality first, then the quality rules' CPU per document both ways.

    python bench/native_words.py [--corpus DIR] [--out bench/results/native_words.json]

Every response of the crawl is extracted (Resiliparse, as the pipeline does) and given its language by
fastText (the profile the rules use). Then, in two fresh processes (the extension, and CURATE_NATIVE=0:
pure Python with its chunk cache starting cold, as in a new worker), each process computes every distinct
whitespace chunk's tokens, every document's units (tokens, words, per-line counts, alphabetic words),
and the quality stage's signals and rejection reasons, timing the quality rules (annotate + decide) in
CPU seconds. The parent compares the two outputs item by item and prints the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.pipeline import ensure_corpus  # noqa: E402


def extract(files: list[Path]) -> list[dict]:
    from curate.filters.html_extract import extract_main_text
    from curate.filters.langid import default_model_path, load_fasttext, normalize_language, one_line
    from curate.pipelines.readers import InputConfig, read_file

    docs = []
    for path in files:
        for doc in read_file(str(path), InputConfig()):
            if doc.get("html") is not None:
                docs.append({"id": doc["id"], "text": extract_main_text(doc["html"], doc.get("charset"))})
    model = load_fasttext(default_model_path(), "langid.model")
    labels, _ = model.predict([one_line(doc["text"]) for doc in docs], k=1)
    for doc, label in zip(docs, labels, strict=True):
        doc["lang"] = normalize_language(label[0].removeprefix("__label__")) if len(label) else None
    return docs


def judge(docs_file: Path, out: Path) -> None:
    """One side: everything the rules take from the splitter, and the rules' CPU time."""
    from curate.filters import text_units
    from curate.filters.native_words import enabled
    from curate.filters.quality import QualityConfig, QualityFilter
    from curate.filters.spacy_words import split_chunk
    from curate.filters.text_units import TextUnits, document_tokens, profile_for

    docs = pickle.loads(docs_file.read_bytes())
    rules = QualityFilter(QualityConfig())
    started = time.process_time()
    annotations = rules.annotate(docs)
    reasons = [rules.decide(a, d) for a, d in zip(annotations, docs, strict=True)]
    cpu = time.process_time() - started
    splitter = text_units._NATIVE
    chunks = sorted({chunk for doc in docs for chunk in doc["text"].split()})
    split = splitter.split_chunk_tokens if splitter is not None else split_chunk
    units = []
    for doc in docs:
        u = TextUnits(doc["text"], profile_for(doc.get("lang")))
        units.append((u.tokens, u.words, u.line_token_counts, u.n_tokens, u.n_alpha_words))
    result = {
        "native": enabled(),
        "quality_cpu_s": cpu,
        "chunks": [split(c) for c in chunks],
        "documents": [tuple(document_tokens(doc["text"])) for doc in docs],
        "units": units,
        "annotations": annotations,
        "reasons": reasons,
    }
    out.write_bytes(pickle.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "native_words.json")
    parser.add_argument("--judge", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.judge:
        judge(*args.judge)
        return
    work = Path(tempfile.mkdtemp(prefix="curate-native-words-"))
    docs = extract(ensure_corpus(args.corpus))
    (work / "docs.pkl").write_bytes(pickle.dumps(docs))
    sides = {}
    for name, native in (("native", "1"), ("python", "0")):
        out = work / f"{name}.pkl"
        env = {**os.environ, "CURATE_NATIVE": native}
        subprocess.run(
            [sys.executable, __file__, "--judge", str(work / "docs.pkl"), str(out)], env=env, check=True
        )
        sides[name] = pickle.loads(out.read_bytes())
    native, python = sides["native"], sides["python"]
    if not native["native"]:
        raise SystemExit("the curate_native extension is not built: pip install ./native (or make setup)")
    differ = {
        key: sum(a != b for a, b in zip(native[key], python[key], strict=True))
        for key in ("chunks", "documents", "units", "annotations", "reasons")
    }
    n = len(docs)
    result = {
        "command": "python bench/native_words.py",
        "documents": n,
        "distinct_chunks": len(native["chunks"]),
        "differences": differ,
        "kept": sum(reason is None for reason in native["reasons"]),
        "quality_ms_per_doc": {
            "native": round(1000 * native["quality_cpu_s"] / n, 3),
            "python": round(1000 * python["quality_cpu_s"] / n, 3),
        },
        "load_average": os.getloadavg(),
    }
    print(f"{n:,} documents, {result['distinct_chunks']:,} distinct chunks, {result['kept']:,} kept")
    print(f"differences native vs pure Python: {differ}")
    ms = result["quality_ms_per_doc"]
    print(f"quality rules (annotate + decide), CPU ms/doc: native {ms['native']}, Python {ms['python']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if any(differ.values()):
        raise SystemExit("the native splitter differs from the pure-Python one")


if __name__ == "__main__":
    main()
