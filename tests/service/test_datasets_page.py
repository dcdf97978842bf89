"""The datasets page compares versions: the API's comparison and the table the page draws from it, in a
real browser (Debian's chromium driven by Playwright), through the Diff form and the "vs parent" link."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from curate.versions import LocalStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _version(folder: Path, kept: int, too_short: int, shards: int, min_words: int) -> tuple[Path, dict]:
    """An output folder: stats with three stages, a manifest of ``shards`` shards, and its recipe."""
    (folder / "shards").mkdir(parents=True)
    listed = []
    for i in range(shards):
        data = f"{folder.name} shard {i}".encode()
        (folder / "shards" / f"shard-{i:05d}.parquet").write_bytes(data)
        listed.append({"path": f"shards/shard-{i:05d}.parquet", "sha256": hashlib.sha256(data).hexdigest()})
    read = kept + too_short + 4
    stages = {
        "read": {"in": read, "out": read, "rejected": {}},
        "langid": {"in": read, "out": read - 4, "rejected": {"wrong_language": 4}},
        "quality": {"in": read - 4, "out": kept, "rejected": {"too_short": too_short}},
    }
    stats = {
        "documents_read": read,
        "documents_kept": kept,
        "documents_rejected": read - kept,
        "stages": stages,
    }
    (folder / "stats.json").write_text(json.dumps(stats))
    manifest = {"shards": listed, "total_tokens": 1000 * shards}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    recipe = {"stages": {"quality": {"gopher_quality": {"min_doc_words": min_words}}}}
    return folder, {"recipe": recipe}


@pytest.fixture(scope="module")
def service(served, tmp_path_factory):
    """The module's service, its store holding dataset ``web``: two versions on main, the second keeping
    more (the service opens the store on each request)."""
    store = LocalStore(served.store)
    for name, kept, short, shards, words in (("v1", 30, 10, 1, 50), ("v2", 36, 4, 3, 30)):
        folder, lineage = _version(tmp_path_factory.mktemp(name) / "out", kept, short, shards, words)
        store.commit_dir(folder, "web", "main", f"version {name}", lineage)
    return served


def test_the_diff_api_answers_the_comparison_the_page_draws(service):
    head = LocalStore(service.store).log("web", "main")
    status, body = service.request("GET", f"/api/datasets/web/diff?a={head[1].id}&b=main")
    assert status == 200, body
    totals = {t["name"]: t for t in body["totals"]}
    assert totals["documents kept"] == {"name": "documents kept", "a": 30, "b": 36, "delta": 6}
    assert totals["tokens"]["delta"] == 2000 and totals["shards"] == {
        "name": "shards",
        "a": 1,
        "b": 3,
        "delta": 2,
    }
    quality = next(s for s in body["stages"] if s["stage"] == "quality")
    assert quality["rejected"] == [{"reason": "too_short", "a": 10, "b": 4, "delta": -6}]
    assert body["recipe"] == [{"key": "stages.quality.gopher_quality.min_doc_words", "a": 50, "b": 30}]
    assert body["b"]["id"] == head[0].id and body["b"]["message"] == "version v2"
    assert body["files"]["added"] == ["shards/shard-00001.parquet", "shards/shard-00002.parquet"]


def test_the_page_draws_the_table_from_the_form_and_from_vs_parent(service):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (make browser-tools)")
    head = LocalStore(service.store).log("web", "main")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    message.type == "error"
                    and not message.location.get("url", "").endswith("/favicon.ico")
                    and errors.append(message.text)
                ),
            )
            page.goto(service.base + "/datasets?name=web")
            page.locator("#log a", has_text="vs parent").first.click()
            page.wait_for_selector("#diff-table")
            _assert_table(page)
            page.fill("#ref-a", "main")  # the form, the other way round
            page.fill("#ref-b", head[1].id[:12])
            page.evaluate("document.getElementById('diff').innerHTML = ''")
            page.click("#diff-form button[type=submit]")
            page.wait_for_selector("#diff-table")
            assert _row(page, "documents kept") == ["documents kept", "36", "30", "−6"]
            assert errors == []
            page.fill("#ref-b", "no-such-ref")
            page.click("#diff-form button[type=submit]")
            page.wait_for_selector("#diff .error")
            assert "no-such-ref" in page.inner_text("#diff .error")
        finally:
            browser.close()


def _row(page, name: str) -> list[str]:
    row = page.locator("#diff-table tr", has=page.locator("td", has_text=name)).first
    return [cell.strip() for cell in row.locator("td").all_inner_texts()]


def _assert_table(page) -> None:
    assert _row(page, "documents kept") == ["documents kept", "30", "36", "+6"]
    assert _row(page, "shards") == ["shards", "1", "3", "+2"]
    assert _row(page, "tokens") == ["tokens", "1,000", "3,000", "+2,000"]
    assert _row(page, "too_short") == ["too_short", "10", "4", "−6"]
    assert _row(page, "quality")[:3] == ["quality", "40 → 30", "40 → 36"]
    recipe = page.inner_text("#diff-recipe")
    assert "stages.quality.gopher_quality.min_doc_words" in recipe and "50" in recipe and "30" in recipe
