#!/usr/bin/env python3
"""Language ID labels and scores under whichever fastText binding is installed, compared with a record.

    python bench/langid_binding.py --record bench/results/langid_binding_before.json   # old binding
    python bench/langid_binding.py --compare bench/results/langid_binding_before.json  # new binding

The texts are the real samples in ../shared/data (every extracted WARC page and every JSONL document),
scored by filters/langid.py with the default lid.176.ftz. Switching bindings must not change a single
label or score: the comparison prints how many differ and the largest score difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def binding() -> str:
    """The installed distribution that provides the `fasttext` import."""
    for name in (
        "fasttext-numpy2",
        "fasttext-numpy2-wheel",
        "fasttext-predict",
        "fasttext",
        "fasttext-wheel",
    ):
        try:
            return f"{name}=={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def score_samples() -> list[dict]:
    sys.path.insert(0, str(BENCH.parent))
    from bench.filters import load_texts
    from curate.filters.langid import LangIdConfig, make_filter

    docs = load_texts(None, 100_000)
    annotations = make_filter(LangIdConfig(languages=None, min_score=0.0)).annotate(docs)
    return [{"url": d.get("url"), **a} for d, a in zip(docs, annotations, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", type=Path, help="Write labels and scores here.")
    parser.add_argument("--compare", type=Path, help="Compare with a record written by --record.")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "langid_binding.json")
    args = parser.parse_args()
    rows = score_samples()
    current = binding()
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps({"binding": current, "rows": rows}, indent=1) + "\n")
        print(f"{current}: {len(rows)} documents scored -> {args.record}")
    if args.compare:
        before = json.loads(args.compare.read_text())
        old = before["rows"]
        if len(old) != len(rows):
            raise SystemExit(f"{args.compare} has {len(old)} documents, this run {len(rows)}")
        label_diffs = sum(a["lang"] != b["lang"] for a, b in zip(old, rows, strict=True))
        score_diff = max(
            (
                abs((a["lang_score"] or 0.0) - (b["lang_score"] or 0.0))
                for a, b in zip(old, rows, strict=True)
            ),
            default=0.0,
        )
        result = {
            "before": before["binding"],
            "after": current,
            "documents": len(rows),
            "labels_differing": label_diffs,
            "max_abs_score_difference": score_diff,
            "identical": label_diffs == 0 and score_diff == 0.0,
        }
        print(
            f"{'binding before':<26}{'binding after':<30}{'docs':>6}{'labels differ':>15}{'max |Δscore|':>14}"
        )
        print(f"{before['binding']:<26}{current:<30}{len(rows):>6}{label_diffs:>15}{score_diff:>14.3g}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
