"""ROC AUC of the toxicity stage's `toxicity` annotation against human labels (Jigsaw samples).

Usage: python -m bench.toxicity_auc [--data ../shared/data/toxicity] [--json toxicity_auc.json]

Rows labelled -1 (Jigsaw's unscored test comments) are left out. "toxic" is the `toxic` column;
"any" is toxic or any of the five sub-labels. Read the train split with care: alt-profanity-check was
trained on Jigsaw's training comments (its README), so those rows may have been seen; the test split's
comments come from Jigsaw's test set (26 labelled, 2 toxic: a small sample, a wide interval).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from sklearn.metrics import roc_auc_score

from curate.filters.toxicity import ToxicityConfig, make_filter

REPO = Path(__file__).resolve().parents[1]
LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


def labelled_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["toxic"] != "-1"]


def evaluate(path: Path, cfg: ToxicityConfig) -> dict[str, float | int]:
    rows = labelled_rows(path)
    filt = make_filter(cfg)
    scores = [a["toxicity"] for a in filt.annotate([{"text": r["comment_text"]} for r in rows])]
    toxic = [int(r["toxic"]) for r in rows]
    any_label = [int(any(r[c] == "1" for c in LABELS)) for r in rows]
    return {
        "rows": len(rows),
        "toxic": sum(toxic),
        "auc_toxic": roc_auc_score(toxic, scores),
        "auc_any": roc_auc_score(any_label, scores),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "toxicity")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args(argv)
    cfg = ToxicityConfig(enabled=True)
    results = {}
    print(f"{'split':<8}{'rows':>6}{'toxic':>7}{'AUC toxic':>11}{'AUC any':>9}")
    for split in ("train", "test"):
        path = args.data / f"jigsaw-sample-{split}.csv"
        if not path.is_file():
            print(f"{path}: missing (the ../shared sample data)", file=sys.stderr)
            return 1
        r = results[split] = evaluate(path, cfg)
        print(f"{split:<8}{r['rows']:>6}{r['toxic']:>7}{r['auc_toxic']:>11.3f}{r['auc_any']:>9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"classifier": cfg.classifier, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
