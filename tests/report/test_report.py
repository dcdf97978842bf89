"""The run report: written by `curate run`, rebuilt by `curate report`, self-contained, and its numbers
computed from the run's own Parquet and stats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.cli import main
from curate.report import build_report
from curate.report.collect import BINS, collect
from curate.report.page import render


def _column(folder: Path, name: str, stage: str | None = None) -> np.ndarray:
    """A column's values over a folder's Parquet files; with ``stage``, of the documents it rejected."""
    values = []
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path)
        if stage is not None:
            table = table.filter(pc.equal(table["stage"], stage))
        values.append(table[name].to_numpy(zero_copy_only=False))
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
    kept, rejected_by_langid = (
        _column(small_run / "documents", "lang_score"),
        _column(small_run / "rejected", "lang_score", stage="langid"),
    )
    assert hist.rejected_by == "langid"
    assert sum(hist.kept) == len(kept) and sum(hist.rejected) == len(rejected_by_langid)
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


def _write(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")


def test_histograms_overlay_only_their_own_stages_rejections_and_skip_constant_signals(tmp_path: Path):
    """lang_score is written by langid; a document dedup rejected later carries it too, and must not show
    as a langid rejection. A signal that is 0 everywhere is a line in a table, not an empty chart."""
    out = tmp_path / "out"
    stats = {"stages": {"read": {"in": 6, "out": 6, "rejected": {}},
                        "langid": {"in": 6, "out": 4, "rejected": {"langid": 2}},
                        "dedup_exact": {"in": 4, "out": 2, "rejected": {"duplicate_exact": 2}}},
             "documents_read": 6, "documents_kept": 2}  # fmt: skip
    out.mkdir()
    (out / "stats.json").write_text(json.dumps(stats))
    doc = {"id": "", "url": "u", "text": "t", "lang": "en", "zeros": 0.0}
    _write(out / "documents", [doc | {"id": "k1", "lang_score": 0.9}, doc | {"id": "k2", "lang_score": 0.8}])
    _write(
        out / "rejected",
        [doc | {"id": "l1", "lang_score": 0.3, "lang": "de", "stage": "langid", "reason": "langid"},
         doc | {"id": "l2", "lang_score": 0.5, "lang": "fr", "stage": "langid", "reason": "langid"},
         doc | {"id": "d1", "lang_score": 0.95, "stage": "dedup_exact", "reason": "duplicate_exact"},
         doc | {"id": "d2", "lang_score": 0.97, "stage": "dedup_exact", "reason": "duplicate_exact"}],
    )  # fmt: skip
    data = collect(str(out), config={"stages": {"langid": {"min_score": 0.65}}})
    by_signal = {h.signal: h for h in data.histograms}
    lang = by_signal["lang_score"]
    assert lang.rejected_by == "langid" and sum(lang.rejected) == 2 and sum(lang.kept) == 2
    assert lang.edges[0] == 0.3 and abs(lang.edges[-1] - 0.9) < 1e-9  # the 0.95 duplicates are not drawn
    assert by_signal["zeros"].constant == 0.0
    langid_samples = data.samples["langid / langid"]
    assert [s["values"] for s in langid_samples] == [
        {"lang": "de", "lang_score": 0.3, "zeros": 0.0},  # what langid's rejections carry
        {"lang": "fr", "lang_score": 0.5, "zeros": 0.0},
    ]
    page = render(data)
    assert "rejected by langid" in page
    assert "lang_score 0.3 (threshold 0.65)" in page
    assert "<td>zeros</td><td>0.00</td>" in page  # listed with its value
    assert '"text":"zeros"' not in page and '"text":"lang_score"' in page  # not drawn; lang_score is
