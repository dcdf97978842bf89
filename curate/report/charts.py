"""Plotly figures for the run report, built from `collect.ReportData` (small aggregates only).

Figures are plotly's JSON figure format (``{"data": [traces], "layout": {...}}``) that plotly.js renders;
they are built as plain dicts because plotly's Python figure objects spend seconds per report validating
and deep-copying templates for a few dozen small charts.
"""

from __future__ import annotations

from typing import Any

from curate.report.collect import Histogram, ReportData

KEPT, REJECTED, TARGET = "#2a9d8f", "#e76f51", "#264653"
_AXIS = {"gridcolor": "#ebebeb", "zerolinecolor": "#ebebeb", "automargin": True}


class Figure(dict):
    """A plotly figure: ``data`` (traces) and ``layout``."""

    def add_bar(self, marker_color: str | None = None, **trace: Any) -> None:
        if marker_color:
            trace["marker"] = {"color": marker_color}
        self["data"].append({"type": "bar", **trace})

    def add_vline(self, x: float, label: str) -> None:
        self["layout"]["shapes"].append(
            {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
             "line": {"dash": "dash", "color": TARGET, "width": 2}}
        )  # fmt: skip
        self["layout"]["annotations"].append(
            {"x": x, "xref": "x", "y": 1, "yref": "paper", "text": label, "showarrow": False,
             "xanchor": "left", "yanchor": "top", "font": {"size": 11, "color": TARGET}}
        )  # fmt: skip


def _figure(title: str, height: int = 320, yaxis_title: str = "documents", **layout: Any) -> Figure:
    xaxis = {**_AXIS, **({"title": {"text": layout.pop("xaxis_title")}} if "xaxis_title" in layout else {})}
    yaxis = {**_AXIS, "title": {"text": yaxis_title}}
    if "yaxis_type" in layout:
        yaxis["type"] = layout.pop("yaxis_type")
    if "yaxis_tickformat" in layout:
        yaxis["tickformat"] = layout.pop("yaxis_tickformat")
    return Figure(
        data=[],
        layout={
            # Left-aligned, with room above the plot: plotly's toolbar sits at the top right.
            "title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left", "y": 0.98},
            "height": height,
            "margin": {"l": 50, "r": 20, "t": 56, "b": 40},
            "paper_bgcolor": "#fff",
            "plot_bgcolor": "#fff",
            "legend": {"orientation": "h", "y": -0.25},
            "xaxis": xaxis,
            "yaxis": yaxis,
            "shapes": [],
            "annotations": [],
            **layout,
        },
    )


def stage_order(data: ReportData) -> list[str]:
    return list(data.stats.get("stages", {}))


def funnel(data: ReportData) -> Figure:
    stages = data.stats["stages"]
    names = stage_order(data)
    figure = _figure("Documents in and out per stage", barmode="group")
    figure.add_bar(name="in", x=names, y=[stages[s]["in"] for s in names], marker_color=TARGET)
    figure.add_bar(name="out", x=names, y=[stages[s]["out"] for s in names], marker_color=KEPT)
    return figure


def token_funnel(data: ReportData) -> Figure | None:
    """Tokens per stage, estimated from characters of text at the kept documents' tokens per character."""
    if not data.kept_tokens or not data.chars.get("kept"):
        return None
    per_char = data.kept_tokens / data.chars["kept"]
    names = stage_order(data)
    outs, ins = [], []
    for index, stage in enumerate(names):
        later = sum(data.chars.get(s, 0) for s in names[index + 1 :])
        out_chars = data.chars["kept"] + later
        outs.append(round(out_chars * per_char))
        ins.append(round((out_chars + data.chars.get(stage, 0)) * per_char))
    figure = _figure(
        "Tokens in and out per stage (estimated from characters)", barmode="group", yaxis_title="tokens"
    )
    figure.add_bar(name="in", x=names, y=ins, marker_color=TARGET)
    figure.add_bar(name="out", x=names, y=outs, marker_color=KEPT)
    return figure


def rejections(data: ReportData) -> Figure:
    stages = data.stats["stages"]
    names = [s for s in stage_order(data) if stages[s]["rejected"]]
    reasons = sorted({r for s in names for r in stages[s]["rejected"]})
    figure = _figure("Rejections by stage and reason", height=360, barmode="stack")
    for reason in reasons:
        figure.add_bar(name=reason, x=names, y=[stages[s]["rejected"].get(reason, 0) for s in names])
    return figure


def languages(data: ReportData, top: int = 25) -> Figure:
    rows = list(data.languages.items())[:top]
    figure = _figure("Languages (top 25)", barmode="stack")
    figure.add_bar(name="kept", x=[r[0] for r in rows], y=[r[1][0] for r in rows], marker_color=KEPT)
    figure.add_bar(name="rejected", x=[r[0] for r in rows], y=[r[1][1] for r in rows], marker_color=REJECTED)
    return figure


def histogram(hist: Histogram) -> Figure:
    centers = [(a + b) / 2 for a, b in zip(hist.edges, hist.edges[1:], strict=False)]
    width = hist.edges[1] - hist.edges[0]
    title = f"{hist.signal} (log10)" if hist.log else hist.signal
    figure = _figure(title, height=280, barmode="overlay", showlegend=True)
    figure.add_bar(name="kept", x=centers, y=hist.kept, width=width, marker_color=KEPT, opacity=0.7)
    if hist.rejected_by and any(hist.rejected):
        figure.add_bar(name=f"rejected by {hist.rejected_by}", x=centers, y=hist.rejected, width=width,
                       marker_color=REJECTED, opacity=0.6)  # fmt: skip
    for value in hist.thresholds:
        figure.add_vline(value, "threshold")
    return figure


def cluster_sizes(data: ReportData) -> Figure | None:
    if not data.cluster_sizes:
        return None
    sizes = list(data.cluster_sizes)
    counts = list(data.cluster_sizes.values())
    figure = _figure(
        "Duplicate clusters by size (size 1: documents with no near-duplicate)",
        xaxis_title="documents in cluster",
        yaxis_title="clusters",
        yaxis_type="log" if max(counts) > 100 * max(min(counts), 1) else "linear",
    )
    figure["layout"]["xaxis"]["type"] = "category"
    figure.add_bar(name="clusters", x=[str(s) for s in sizes], y=counts, marker_color=TARGET)
    return figure


def domain_mix(data: ReportData) -> Figure | None:
    mixing = data.stats.get("mixing")
    if mixing and mixing.get("domains"):
        domains = list(mixing["domains"])
        figure = _figure(
            "Domain mix: achieved vs target token share",
            barmode="group",
            yaxis_tickformat=".0%",
            yaxis_title="share of tokens",
        )
        target = [mixing["domains"][d]["target_share"] for d in domains]
        achieved = [mixing["domains"][d]["achieved_share"] for d in domains]
        figure.add_bar(name="target", x=domains, y=target, marker_color=TARGET)
        figure.add_bar(name="achieved", x=domains, y=achieved, marker_color=KEPT)
        return figure
    domains = (data.manifest or {}).get("domains") or data.stats.get("tokenize", {}).get("domains")
    if not domains:
        return None
    figure = _figure("Domain mix: tokens per domain (no mixing target set)", yaxis_title="tokens")
    figure.add_bar(name="tokens", x=list(domains), y=list(domains.values()), marker_color=KEPT)
    return figure


def shard_tokens(data: ReportData) -> Figure | None:
    shards = (data.manifest or {}).get("shards") or []
    if not shards:
        return None
    figure = _figure("Tokens per shard", xaxis_title="shard", yaxis_title="tokens")
    names = [s["path"].rsplit("/", 1)[-1] for s in shards]
    figure.add_bar(name="tokens", x=names, y=[s["n_tokens"] for s in shards], marker_color=KEPT)
    return figure
