"""`curate classifier train` on real data: Wikipedia articles (the demo) against crawl pages the quality
rules reject; DCLM's settings; held-out metrics printed and written beside the model."""

from __future__ import annotations

import gzip
import json

import fasttext
import pytest

from curate.classifier_train import (
    DCLM_SETTINGS,
    MAX_EPOCHS,
    MIN_USABLE_AUC,
    TrainReport,
    metrics_path,
    roc_auc,
    settings_for,
)
from curate.cli import main as cli_main

pytestmark = pytest.mark.slow


def test_wikipedia_against_rejected_crawl_pages_separates(quality_model, capsys):
    model_path, report = quality_model
    with capsys.disabled():
        print(f"\nclassifier held-out: {report.lines()[1]}")
    assert report.valid_examples >= 30
    assert report.roc_auc >= 0.9
    assert report.precision >= 0.7 and report.recall >= 0.7
    written = json.loads(metrics_path(str(model_path)).read_text())
    assert written["roc_auc"] == report.roc_auc
    assert written["settings"]["wordNgrams"] == 2 and written["settings"]["dim"] == 100
    model = fasttext.load_model(str(model_path))
    assert sorted(model.get_labels()) == ["__label__cc", "__label__hq"]
    assert model.get_dimension() == DCLM_SETTINGS["dim"]


def test_cli_prints_metrics_and_writes_them_beside_the_model(
    demo_corpus, quality_rejected_pages, tmp_path, capsys
):
    output = tmp_path / "m.bin"
    code = cli_main(
        [
            "classifier", "train",
            "--positive", str(demo_corpus / "wikipedia-en.jsonl.gz"),
            "--negative", str(quality_rejected_pages),
            "--output", str(output),
            "--valid-fraction", "0.3",
            "--epoch", "2",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "ROC AUC" in printed and "precision" in printed and "recall" in printed
    assert json.loads((tmp_path / "m.metrics.json").read_text())["settings"]["epoch"] == 2


def test_missing_input_is_one_line_error(tmp_path, capsys):
    code = cli_main(
        ["classifier", "train", "--positive", str(tmp_path / "nope.jsonl"), "--negative", str(tmp_path / "x"),
         "--output", str(tmp_path / "m.bin")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "nope.jsonl not found" in err and len(err.strip().splitlines()) == 1


def test_roc_auc_counts_ties_half():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([0.5, 0.5], [0, 1]) == 0.5
    assert roc_auc([0.2, 0.3], [1, 1]) is None


def test_settings_scale_with_the_training_set():
    assert settings_for(400_000) == DCLM_SETTINGS  # DCLM's own scale: its settings as published
    small = settings_for(520)  # 74 positives and 446 negatives, as in the issue
    assert small["epoch"] > DCLM_SETTINGS["epoch"] and small["lr"] > DCLM_SETTINGS["lr"]
    assert settings_for(3)["epoch"] == MAX_EPOCHS and settings_for(30_000)["lr"] == DCLM_SETTINGS["lr"]


def test_a_small_imbalanced_real_set_trains_a_usable_model(
    demo_corpus, quality_rejected_pages, tmp_path, capsys
):
    """20 Wikipedia articles against the rejected crawl pages (1 : 2.5), with the scaled settings."""
    with gzip.open(demo_corpus / "wikipedia-en.jsonl.gz", "rt", encoding="utf-8") as lines:
        few = [next(lines) for _ in range(20)]
    positives = tmp_path / "few.jsonl"
    positives.write_text("".join(few), encoding="utf-8")
    code = cli_main(
        ["classifier", "train", "--positive", str(positives), "--negative", str(quality_rejected_pages),
         "--output", str(tmp_path / "few.bin"), "--valid-fraction", "0.3"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "warning" not in printed
    assert json.loads((tmp_path / "few.metrics.json").read_text())["roc_auc"] >= 0.9


def test_a_model_that_cannot_rank_is_flagged():
    def report(auc):
        settings = {**settings_for(520), "seed": 42}
        return TrainReport("m.bin", 468, 52, 0.2, 0.1, auc, "__label__hq", settings)

    flagged = report(0.45)  # what DCLM's settings gave on 74 positives and 446 negatives
    assert "held-out ROC AUC 0.45 is below 0.7" in flagged.warning and flagged.warning in flagged.lines()
    assert report(MIN_USABLE_AUC).warning is None and report(0.99).lines()[-1].startswith("held-out")
    assert "no ROC AUC" in report(None).warning
