"""`curate classifier train` on real data: Wikipedia articles (the demo) against crawl pages the quality
rules reject; DCLM's settings; held-out metrics printed and written beside the model."""

from __future__ import annotations

import json

import fasttext
import pytest

from curate.classifier_train import DCLM_SETTINGS, metrics_path, roc_auc
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
