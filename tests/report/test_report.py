"""The run report: written by `curate run`, rebuilt by `curate report`, self-contained, and its numbers
computed from the run's own Parquet and stats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from curate.cli import main
from curate.report import build_report
from curate.report.collect import BINS, collect
from curate.report.page import render


def _column(folder: Path, name: str) -> np.ndarray:
    values = [pq.read_table(path, columns=[name])[name].to_numpy(zero_copy_only=False)
              for path in sorted(folder.glob("*.parquet"))]  # fmt: skip
    joined = np.concatenate(values).astype(float)
    return joined[~np.isnan(joined)]


def test_run_writes_a_self_contained_report(small_run: Path):
    page = (small_run / "report.html").read_text()
    assert len(page.encode()) < 8_000_000
    # Offline: no script, stylesheet or image is fetched from anywhere.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "Plotly.newPlot" in page and "plotly.js" in page.lower()
    stats = json.loads((small_run / "stats.json").read_text())
    embedded = json.loads(re.search(r"id='curate-stats'>(.*?)</script>", page).group(1))
    assert embedded["stats"] == stats
    for stage, entry in stats["stages"].items():
        assert f"<td>{stage}</td><td>{entry['in']:,}</td><td>{entry['out']:,}</td>" in page
        for reason in entry["rejected"]:
            assert reason in page
    assert "cpu_seconds" in stats and stats["cpu_seconds"] > 0


def test_histograms_are_the_parquet_columns_binned(small_run: Path):
    data = collect(str(small_run))
    by_signal = {h.signal: h for h in data.histograms}
    assert {"lang_score", "gopher_words", "fineweb_line_punct_ratio"} <= set(by_signal)
    hist = by_signal["lang_score"]
    kept, rejected = (
        _column(small_run / "documents", "lang_score"),
        _column(small_run / "rejected", "lang_score"),
    )
    assert sum(hist.kept) == len(kept) and sum(hist.rejected) == len(rejected)
    edges = np.array(hist.edges)
    expected = np.histogram(kept, bins=edges)[0]
    assert len(hist.kept) == BINS and hist.kept == expected.tolist()
    assert hist.thresholds == [0.65]  # the recipe's langid.min_score, read from the manifest's config
    words = by_signal["gopher_words"]
    assert words.log and words.thresholds == [np.log10(50), np.log10(100_000)]
    stats = json.loads((small_run / "stats.json").read_text())
    assert sum(sum(counts) for counts in data.languages.values()) == stats["documents_read"]
    assert data.kept_tokens == json.loads((small_run / "manifest.json").read_text())["total_tokens"]


def test_samples_are_truncated_and_escaped(small_run: Path):
    data = collect(str(small_run))
    stats = json.loads((small_run / "stats.json").read_text())
    reasons = {f"{s} / {r}" for s, e in stats["stages"].items() for r in e["rejected"]}
    assert reasons <= set(data.samples) and data.samples["kept"]
    assert all(len(doc["text"]) <= 401 for docs in data.samples.values() for doc in docs)
    data.samples["kept"][0]["text"] = "<script>alert('x')</script> & more"
    page = render(data)
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page


def test_curate_report_rebuilds_it(small_run: Path, tmp_path: Path, capsys):
    copy = tmp_path / "out"
    for path in small_run.rglob("*"):
        if path.is_file() and path.name != "report.html":
            target = copy / path.relative_to(small_run)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert main(["report", str(copy)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (copy / "report.html").read_text().count("Plotly.newPlot") == build_report(str(copy)).count(
        "Plotly.newPlot"
    )


def test_report_of_a_folder_without_stats_is_a_one_line_error(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no stats.json" in capsys.readouterr().err
