"""The run report as one self-contained HTML file: plotly.js inline (from the installed plotly package,
never a CDN), every figure as JSON beside it, and text escaped, so it opens offline from anywhere."""

from __future__ import annotations

import html
import json
import time
from functools import lru_cache
from typing import Any

import yaml
from plotly.offline import get_plotlyjs

from curate.report import charts
from curate.report.charts import Figure
from curate.report.collect import SIGNALS, ReportData

# Models' scores are shown first, named by the stage that writes them (as each stage declares).
MODEL_STAGES = {name: stage for name, (stage, signal) in SIGNALS.items() if signal.model}
MODEL_SIGNALS = tuple(MODEL_STAGES)

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#264653;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}main{padding:8px 28px 40px;max-width:1400px}
h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.chart{background:#fff;border:1px solid #e4e4e4;border-radius:6px;min-height:260px}
table{border-collapse:collapse;background:#fff;font-size:14px}td,th{border:1px solid #e4e4e4;padding:4px 10px;
text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
pre{background:#fff;border:1px solid #e4e4e4;padding:10px;overflow:auto;max-height:400px;font-size:12px}
.sample{background:#fff;border:1px solid #e4e4e4;border-radius:6px;padding:8px 12px;margin:6px 0;
font-size:13px}
.sample .url{color:#555;font-family:monospace;word-break:break-all}.sample .text{white-space:pre-wrap}
table.funnel td:last-child{text-align:left}
.sample .values{color:#b5452b;font-family:monospace;margin:2px 0}
.note{color:#666;font-style:italic}nav a{margin-right:12px;color:#264653}
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    return get_plotlyjs()


def _table(header: list[str], rows: list[list[Any]], css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table class='{css_class}'><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


class _Charts:
    """Collects figures; each becomes a div and one line of script."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def div(self, figure: Figure | None, missing: str = "") -> str:
        if figure is None:
            return f'<p class="note">{html.escape(missing)}</p>' if missing else ""
        chart_id = f"chart{len(self.scripts)}"
        spec = json.dumps(figure, separators=(",", ":")).replace("</", "<\\/")
        self.scripts.append(
            f"(function(f){{Plotly.newPlot('{chart_id}',f.data,f.layout,"
            f"{{responsive:true,displaylogo:false}});}})({spec});"
        )
        return f'<div class="chart" id="{chart_id}"></div>'


def _metadata(data: ReportData) -> str:
    stats, manifest, config = data.stats, data.manifest or {}, data.config or {}
    runner = config.get("runner", {})
    seconds = stats.get("seconds") or 0
    code = manifest.get("code", {})
    rows: list[list[Any]] = [
        ["output", data.root],
        ["code version", f"curate {code.get('curate', '?')} ({code.get('git_commit') or 'no git commit'})"],
        ["runner", f"{runner.get('name', '?')} ({runner.get('workers', '?')} workers)"],
        ["wall time (s)", seconds],
        ["CPU time (s)", stats.get("cpu_seconds")],
        ["documents / s", (stats.get("documents_read", 0) / seconds) if seconds else None],
        ["documents read", stats.get("documents_read")],
        ["documents kept", stats.get("documents_kept")],
        ["tokens written", manifest.get("total_tokens")],
        ["accounting balances", stats.get("balanced")],
    ]
    recipe = yaml.safe_dump(config, sort_keys=False, allow_unicode=True) if config else "(not recorded)"
    return _table(["", ""], rows) + (
        f"<details><summary>Recipe</summary><pre>{html.escape(recipe)}</pre></details>"
    )


def _funnel_table(data: ReportData) -> str:
    rows = []
    for stage, entry in data.stats["stages"].items():
        reasons = ", ".join(f"{r} {n:,}" for r, n in entry["rejected"].items()) or "-"
        rows.append([stage, entry["in"], entry["out"], sum(entry["rejected"].values()), reasons])
    return _table(["stage", "in", "out", "rejected", "reasons"], rows, "funnel")


def _values(doc: dict[str, Any], thresholds: dict[str, list[float]]) -> str:
    """What the rejecting stage annotated, with the thresholds: `lang_score 0.61 (threshold 0.65)`."""
    shown = []
    for name, value in doc.get("values", {}).items():
        limits = thresholds.get(name)
        limit = f" (threshold {' / '.join(_fmt_value(t) for t in limits)})" if limits else ""
        shown.append(f"{name} {_fmt_value(value)}{limit}")
    return f"<div class='values'>{html.escape(' · '.join(shown))}</div>" if shown else ""


def _fmt_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _fmt(value)


def _samples(data: ReportData) -> str:
    thresholds = {
        h.signal: [10**t if h.log else t for t in h.thresholds] for h in data.histograms if h.thresholds
    }
    parts = []
    for key, documents in data.samples.items():
        if not documents:
            continue
        parts.append(f"<h3>{html.escape(key)}</h3>")
        for doc in documents:
            error = (
                f"<div class='url'>{html.escape(doc['read_error'])}</div>" if doc.get("read_error") else ""
            )
            parts.append(
                f"<div class='sample'><div class='url'>{html.escape(str(doc.get('url') or doc.get('id')))}"
                f"</div>{error}{_values(doc, thresholds)}"
                f"<div class='text'>{html.escape(doc.get('text') or '(no text)')}</div></div>"
            )
    return "".join(parts) or '<p class="note">no documents written (output.documents/rejected off)</p>'


def render(data: ReportData) -> str:
    """The whole report page."""
    figures = _Charts()
    by_signal = {h.signal: h for h in data.histograms}
    stages_config = (data.config or {}).get("stages", {})
    model_divs = []
    for signal in MODEL_SIGNALS:
        if signal in by_signal and by_signal[signal].constant is None:
            model_divs.append(figures.div(charts.histogram(by_signal[signal])))
        elif signal in by_signal:
            value = _fmt(by_signal[signal].constant)
            model_divs.append(f'<p class="note">{signal}: {value} for every document.</p>')
        else:
            stage = MODEL_STAGES[signal]
            enabled = stages_config.get(stage, {}).get("enabled")
            why = "not enabled in this recipe" if enabled is False else "no values written"
            model_divs.append(f'<p class="note">{signal}: stage {stage} {why}.</p>')
    others = [h for h in data.histograms if h.signal not in MODEL_SIGNALS]
    signal_divs = [figures.div(charts.histogram(h)) for h in others if h.constant is None]
    constant = [[h.signal, h.constant] for h in others if h.constant is not None]
    constant_table = (
        "<p>Signals with one value for every document (nothing to draw):</p>"
        + _table(["signal", "value"], constant, "constant")
        if constant
        else ""
    )
    kept, read = data.stats.get("documents_kept", 0), data.stats.get("documents_read", 0)
    sections = [
        ("funnel", "Funnel", figures.div(charts.funnel(data)) + figures.div(charts.token_funnel(data))
         + _funnel_table(data)),
        ("rejections", "Rejections", figures.div(charts.rejections(data), "nothing rejected")),
        ("languages", "Languages", figures.div(charts.languages(data)) if data.languages
         else '<p class="note">no language annotations</p>'),
        ("models", "Model scores: language, toxicity, perplexity (kept vs rejected, thresholds dashed)",
         f"<div class='grid'>{''.join(model_divs)}</div>"),
        ("signals", "Quality signals (kept vs rejected, thresholds dashed)",
         f"<div class='grid'>{''.join(signal_divs)}</div>{constant_table}"),
        ("dedup", "Duplicates", figures.div(charts.cluster_sizes(data), "no duplicate clusters recorded")),
        ("mix", "Domain mix", figures.div(charts.domain_mix(data), "no tokens written")),
        ("shards", "Token shards", figures.div(charts.shard_tokens(data), "no shards written")),
        ("metadata", "Run", _metadata(data)),
        ("samples", "Sample documents (text truncated)", _samples(data)),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{key}">{html.escape(title.split(" (")[0])}</a>' for key, title, _ in sections)
    body = "".join(f'<h2 id="{key}">{html.escape(title)}</h2>{content}' for key, title, content in sections)
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    payload = json.dumps({"root": data.root, "stats": data.stats}).replace("</", "<\\/")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>curate report: {html.escape(data.root)}</title><style>{_STYLE}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        f"<header><h1>curate run report</h1><p>{html.escape(data.root)} · kept {kept:,} of {read:,} documents"
        f" · built {created}</p></header><main><nav>{nav}</nav>{body}</main>"
        f"<script type='application/json' id='curate-stats'>{payload}</script>"
        f"<script>{''.join(figures.scripts)}</script></body></html>"
    )
