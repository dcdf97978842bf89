"""Two versions side by side: what a user asks of a diff (did the documents, tokens and shards go up or down,
which stage and reason moved, which recipe keys changed), as one record for scripts and the web page and
as a table for the terminal (`curate versions diff A B`).
"""

from __future__ import annotations

import json
from typing import Any

from curate.core.errors import CurateError
from curate.versions.base import MANIFEST, Version, VersionStore, count_delta, redact_recipe

_ABSENT: Any = object()
MESSAGE_KEYS = 4  # recipe changes named in a default commit message; the rest are counted


def compare(store: VersionStore, ref_a: str, ref_b: str) -> dict[str, Any]:
    """The comparison of two versions of one repository (JSON-ready; see the module docstring)."""
    a, b = store.resolve(ref_a), store.resolve(ref_b)
    changes = store.diff(a.id, b.id)
    manifest_a, manifest_b = _manifest(store, a), _manifest(store, b)
    stats = changes["stats"]
    totals = [
        {"name": f"documents {kind}", **stats.get(f"documents_{kind}", count_delta(None, None))}
        for kind in ("read", "kept", "rejected")
    ]
    totals.append(
        {"name": "tokens", **count_delta(manifest_a.get("total_tokens"), manifest_b.get("total_tokens"))}
    )
    shards = [
        len(m["shards"]) if isinstance(m.get("shards"), list) else None for m in (manifest_a, manifest_b)
    ]
    totals.append({"name": "shards", **count_delta(*shards)})
    stages = [
        {
            "stage": name,
            "in": entry["in"],
            "out": entry["out"],
            "rejected": [{"reason": reason, **counts} for reason, counts in entry["rejected"].items()],
        }
        for name, entry in stats.get("stages", {}).items()
    ]
    return {
        "a": _side(store, ref_a, a),
        "b": _side(store, ref_b, b),
        "totals": totals,
        "stages": stages,
        "recipe": recipe_changes(_recipe(a, manifest_a), _recipe(b, manifest_b)),
        "files": {kind: changes[kind] for kind in ("added", "removed", "changed")},
    }


def recipe_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every recipe key (dotted: ``stages.quality.min_words``) whose value differs, with both values
    (``None`` where a side does not have the key)."""
    flat_a, flat_b = _flatten(a or {}), _flatten(b or {})
    keys = list(flat_a) + [key for key in flat_b if key not in flat_a]
    return [
        {"key": key, "a": flat_a.get(key), "b": flat_b.get(key)}
        for key in keys
        if flat_a.get(key, _ABSENT) != flat_b.get(key, _ABSENT)
    ]


def commit_message(store: VersionStore, branch: str, recipe: dict[str, Any], run_id: str) -> str:
    """A run's default commit message: the recipe keys it changed against the branch's head."""
    try:
        head = store.resolve(branch)
    except CurateError:  # a new branch: nothing to compare with
        return f"curate run {run_id} (first version on {branch})"
    previous = head.lineage.get("recipe")
    if not previous:
        return f"curate run {run_id}"
    # Where the run wrote its output says nothing about the data: not worth a message's few words.
    changed = [
        c for c in recipe_changes(previous, redact_recipe(recipe)[0]) if not c["key"].startswith("output.")
    ]
    if not changed:
        return f"curate run {run_id} (same recipe as {head.id[:12]})"
    named = "; ".join(f"{c['key']} {_value(c['a'])} → {_value(c['b'])}" for c in changed[:MESSAGE_KEYS])
    more = f"; {len(changed) - MESSAGE_KEYS} more key(s)" if len(changed) > MESSAGE_KEYS else ""
    return named + more


def format_table(comparison: dict[str, Any]) -> str:
    """The comparison as the terminal shows it: totals, stages with their reasons, recipe keys, files."""
    a, b = comparison["a"], comparison["b"]
    lines = [
        f"a  {a['spec']}  {a['id'][:12]}  {a['message']}",
        f"b  {b['spec']}  {b['id'][:12]}  {b['message']}",
    ]
    rows: list[tuple[str, str, str, str]] = [("", "a", "b", "change")]
    rows += [(t["name"], _text(t["a"]), _text(t["b"]), _change(t)) for t in comparison["totals"]]
    if comparison["stages"]:
        rows.append(("stage: in → out", "", "", ""))
    for stage in comparison["stages"]:
        moved = ", ".join(
            f"{k} {_change(stage[k])}" for k in ("in", "out") if _change(stage[k]) not in ("", "0")
        )
        flow_a, flow_b = (f"{_text(stage['in'][s])} → {_text(stage['out'][s])}" for s in ("a", "b"))
        rows.append((f"  {stage['stage']}", flow_a, flow_b, moved))
        rows += [(f"    {r['reason']}", _text(r["a"]), _text(r["b"]), _change(r)) for r in stage["rejected"]]
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    lines.append("")
    for row in rows:
        text = row[0].ljust(width[0]) + "".join(f"  {cell:>{width[i]}}" for i, cell in enumerate(row) if i)
        lines.append(text.rstrip())
    lines.append("")
    if comparison["recipe"]:
        lines.append(f"recipe: {len(comparison['recipe'])} key(s) changed")
        lines += [f"  {c['key']}  {_value(c['a'])} → {_value(c['b'])}" for c in comparison["recipe"]]
    else:
        lines.append("recipe: unchanged")
    added, removed, changed = (len(comparison["files"][k]) for k in ("added", "removed", "changed"))
    lines.append(f"files: {added} added, {removed} removed, {changed} changed")
    return "\n".join(lines)


def _side(store: VersionStore, ref: str, version: Version) -> dict[str, Any]:
    return {"spec": f"{store.name}@{ref}", "id": version.id, "message": version.message}


def _manifest(store: VersionStore, version: Version) -> dict[str, Any]:
    if MANIFEST not in store.files(version.id):
        return {}
    manifest = store.read_json(version.id, MANIFEST)
    return manifest if isinstance(manifest, dict) else {}


def _recipe(version: Version, manifest: dict[str, Any]) -> dict[str, Any]:
    """The recipe recorded with a version (its lineage's, else its manifest's), secrets dropped."""
    recipe = version.lineage.get("recipe") or manifest.get("config") or {}
    return redact_recipe(recipe)[0] if isinstance(recipe, dict) else {}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _text(count: Any) -> str:
    """A count as the table shows it (thousands separated)."""
    if count is None:
        return "-"
    if isinstance(count, int) and not isinstance(count, bool):
        return f"{count:,}"
    return f"{count:.6g}" if isinstance(count, float) else str(count)


def _value(value: Any) -> str:
    """A recipe value as the recipe writes it (YAML/JSON style: true, 0.8, 20000, [...]), shortened."""
    if value is None:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _change(entry: dict[str, Any]) -> str:
    delta = entry.get("delta")
    if delta is None:
        return ""
    if isinstance(delta, float):
        return f"{delta:+.6g}"
    return f"{delta:+,}" if delta else "0"
