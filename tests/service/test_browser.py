"""Every page in a real browser, as a user drives it: Debian's chromium through Playwright (`make test`
installs it). One service for the module, served from a root that holds a folder named `curate` (a
checkout beside its data, the usual layout), with a token; tiny inputs. Every test fails on a JavaScript
error in the console."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-test-token"
RECIPE = "runner: {name: direct, workers: 1}\n"


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make browser-tools` installs it")
        pytest.skip("needs Debian's chromium (make browser-tools)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, start_module_service) -> Any:
    """`curate serve` whose first root holds a `curate` package that would shadow the installed one if
    a job's Python put its working directory on sys.path."""
    root = tmp_path_factory.mktemp("parent")
    checkout = root / "curate"  # `git clone ... curate`: a folder Python would import as a namespace package
    (checkout / "curate").mkdir(parents=True)
    (checkout / "curate" / "__init__.py").write_text("# a checkout's package, not the installed one\n")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'curate'\n")
    (root / "not-a-model.bin").write_bytes(b"this is not a fastText model\n" * 8)
    return start_module_service([root, shared_data], root / ".curate-service", token=TOKEN)


class Page:
    """A browser tab with the service's token cookie; collects JavaScript errors from the console."""

    def __init__(self, browser: Any, service: Any, token: bool = True):
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        if token:
            self.context.add_cookies([{"name": "curate_token", "value": TOKEN, "url": service.base}])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.base = service.base

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def goto(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page


@pytest.fixture
def tab(browser, service) -> Iterator[Page]:
    tab = Page(browser, service)
    yield tab
    tab.context.close()
    assert tab.errors == []


def _shots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("CURATE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_a_run_started_from_the_form_succeeds_and_shows_its_report(tab, service, small_input, tmp_path):
    page = tab.goto("/runs")
    page.fill("#recipe", RECIPE)
    page.fill("#input", str(small_input))
    page.click("#start-run")
    page.wait_for_selector("#started-link")
    run_id = page.inner_text("#started-link")
    row = page.locator(f"tr[data-run='{run_id}']")
    page.wait_for_selector(f"tr[data-run='{run_id}'][data-status='succeeded']", timeout=300_000)
    assert row.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"
    assert row.locator(".pct").inner_text() == "100%"

    page.click(f"tr[data-run='{run_id}'] a[href='/runs/{run_id}']")
    page.wait_for_selector("#report-frame")
    assert "succeeded" in page.inner_text("#title")
    assert page.locator("#stages tbody tr").count() >= 5
    page.frame_locator("#report-frame").locator(".main-svg").first.wait_for()
    page.screenshot(path=str(_shots(tmp_path) / "run-page.png"))

    page.click("#report a[href$='/report']")
    page.wait_for_selector(".chart .main-svg")
    charts = page.locator(".chart")
    assert charts.count() >= 5
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100
    assert page.locator(".chart .main-svg").count() >= charts.count()  # every chart drawn by plotly
    assert page.locator(".chart .bars .point").count() > 0  # with bars in it
    page.screenshot(path=str(_shots(tmp_path) / "report.png"), full_page=True)


def test_a_run_started_from_the_api_is_seen_running_then_finished(tab, service, small_input):
    status, body = service.request("POST", "/api/runs", {"recipe": RECIPE, "input": [str(small_input)]})
    assert status == 201, body
    page = tab.goto(f"/runs/{body['id']}")
    page.wait_for_selector("body[data-status='running']", timeout=60_000)
    assert "running" in page.inner_text("#title")
    assert page.locator("#cancel").is_visible()
    page.wait_for_selector("body[data-status='succeeded']", timeout=300_000)
    page.wait_for_selector("#report-frame")
    assert not page.locator("#cancel").count()
    assert page.locator("#summary [role=progressbar]").get_attribute("aria-valuenow") == "100"
    stages = page.locator("#stages tbody tr")
    assert stages.first.locator("td").first.inner_text() == "read"


def test_a_failed_run_shows_the_end_of_its_log(tab, service, small_input):
    model = "models: [{name: q, path: not-a-model.bin}]"
    recipe = RECIPE + f"stages:\n  classifier: {{enabled: true, {model}}}\n"
    status, body = service.request("POST", "/api/runs", {"recipe": recipe, "input": [str(small_input)]})
    assert status == 201, body
    page = tab.goto(f"/runs/{body['id']}")
    page.wait_for_selector("body[data-status='failed']", timeout=300_000)
    error = page.inner_text("#summary .error")
    assert "not-a-model.bin" in error
    log = page.locator("#log-tail pre")
    assert log.is_visible() and "not-a-model.bin" in log.inner_text()
    job = service.request("GET", f"/api/runs/{body['id']}")[1]
    assert job["log_tail"] and job["log_tail"].splitlines()[-1] in log.inner_text()


def test_the_api_docs_list_the_operations(tab):
    page = tab.goto("/docs")
    page.wait_for_selector(".opblock")
    text = page.inner_text("body")
    for operation in ["/api/runs", "/api/runs/{job_id}/cancel", "/api/train", "/api/datasets/{name}/diff"]:
        assert operation in text, operation
    assert page.locator(".opblock").count() >= 10
    assert "Start a curation run" in text


def test_the_token_is_asked_for_once_per_page_load(browser, service):
    tab = Page(browser, service, token=False)
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept(TOKEN)

    tab.page.on("dialog", answer)
    answered = lambda response: "/api/train" in response.url and response.status == 200  # noqa: E731
    with tab.page.expect_response(answered):
        page = tab.goto("/train")  # two API calls at load, both answered 401 until the token is given
    with page.expect_response(answered, timeout=10_000):
        pass  # the next poll (every 2 s) is answered too, and asks for nothing
    assert dialogs == ["This service needs its token:"]
    tab.context.close()
    # Without a token the server answers 401, which the browser logs as a failed load; nothing else.
    assert [e for e in tab.errors if "401" not in e] == []


def test_the_training_page_is_empty_then_shows_a_run(tab, service, small_input):
    page = tab.goto("/train")
    page.wait_for_selector("#no-runs:not([hidden])")
    assert "No training runs yet" in page.inner_text("#no-runs")
    assert not page.locator("#loss-chart").is_visible()

    pytest.importorskip("torch", reason="a training run needs the train extra")
    runs = service.request("GET", "/api/runs")[1]["runs"]
    data = next(run["id"] for run in runs if run["status"] == "succeeded")
    body = {"data": data, "preset": "tiny", "steps": 2, "device": "cpu", "eval_every": 0, "log_every": 1}
    status, answer = service.request("POST", "/api/train", body)
    assert status == 201, answer
    page.reload()
    row = page.locator(f"tr[data-job='{answer['id']}']")
    page.wait_for_selector(f"tr[data-job='{answer['id']}'][data-status='succeeded']", timeout=300_000)
    assert not page.locator("#no-runs").is_visible()
    page.wait_for_selector("#loss-chart .main-svg")
    assert "2 / 2" in row.inner_text()
    assert page.locator("#loss-chart .scatterlayer .trace").count() >= 1


@pytest.fixture(scope="module")
def task_shards(service: Any, jsonl_files: tuple[Path, ...]) -> tuple[Path, Path]:
    """Two shard sets under the served root with one 512-token BPE (trained on the same 20 real documents):
    the documents once, and twice (a duplicated variant)."""
    sample = pytest.importorskip("curate.train.sample", reason="training needs the train extra")
    once, twice = service.roots[0] / "shards-once", service.roots[0] / "shards-twice"
    sample.write_sample_shards(list(jsonl_files), once, n_shards=2, row_group_bytes=4096, vocab_size=512)
    sample.write_sample_shards(list(jsonl_files), twice, 2, 4096, repeat=2, vocab_size=512)
    return once, twice


def test_the_training_form_starts_a_run_whose_task_scores_are_plotted(tab, service, task_shards, tmp_path):
    """The in-loop eval chart draws the scores the trainer wrote: one curve per task, its points the
    bits-per-byte in the run's train.jsonl."""
    page = tab.goto("/train")
    page.fill("#data", str(task_shards[0]))
    page.select_option("#preset", "tiny")
    page.fill("#steps", "4")
    page.fill("#eval-tasks", "reference arc_easy")
    page.fill("#eval-every", "2")  # two points per curve
    page.fill("#eval-limit", "8")
    page.click("#start button[type=submit]")
    page.wait_for_selector("#start-result:has-text('Started training job')")
    job_id = page.inner_text("#start-result").split()[-1].rstrip(".")
    page.wait_for_selector(f"tr[data-job='{job_id}'][data-status='succeeded']", timeout=300_000)

    output = Path(service.request("GET", f"/api/train/{job_id}")[1]["output"])
    written: dict[str, list[tuple[int, float]]] = {}
    for line in (output / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        for task, scores in (record.get("eval_tasks") or {}).items():
            written.setdefault(task, []).append((record["step"], scores["bpb"]))
    assert sorted(written) == ["arc_easy", "reference"] and all(len(v) == 2 for v in written.values())

    page.wait_for_function(
        f"() => document.getElementById('task-chart').data?.some(t => t.name.startsWith('{job_id[:8]}'))"
    )
    plotted = page.evaluate(
        f"() => document.getElementById('task-chart').data.filter(t => t.name.startsWith('{job_id[:8]}'))"
        ".map(t => [t.name.split(' ').pop(), t.x, t.y])"
    )
    assert {task: list(zip(x, y, strict=True)) for task, x, y in plotted} == written
    markers = page.locator("#task-chart .scatterlayer .trace .point")
    assert markers.count() >= 4  # drawn, not only in the data: 2 tasks x 2 eval steps
    assert "no run scores eval tasks yet" not in page.inner_text("#task-chart")
    page.screenshot(path=str(_shots(tmp_path) / "training.png"), full_page=True)


def test_the_ablation_form_starts_an_ablation_and_shows_its_verdict(tab, service, task_shards):
    versions = pytest.importorskip("curate.versions.embedded")
    repository = versions.EmbeddedRepository("web", versions.LocalStore(service.store))
    repository.commit_output(task_shards[0], "once", "the documents once")
    repository.commit_output(task_shards[1], "twice", "every document twice")
    page = tab.goto("/train")
    page.wait_for_selector("#ablations tbody td:has-text('no ablations yet')")
    page.fill("#ablate-versions", "web@once web@twice")
    page.select_option("#ablate-preset", "cpu")
    page.fill("#ablate-seeds", "1")
    page.fill("#ablate-tokens", "4096")  # one step of the cpu proxy: this checks the plumbing, not the data
    page.fill("#ablate-tasks", "reference")
    page.fill("#ablate-limit", "4")
    page.click("#ablate button[type=submit]")
    page.wait_for_selector("#ablate-result:has-text('Started ablation')")
    job_id = page.inner_text("#ablate-result").split()[-1].rstrip(".")
    row = f"#ablations tr[data-job='{job_id}']"
    page.wait_for_selector(f"{row}[data-status='succeeded']", timeout=300_000)
    assert "2 / 2 runs" in page.inner_text(row)
    verdict = page.inner_text(f"{row} td:last-child")
    assert re.fullmatch(r"web@twice better than web@once on [01] of 1 tasks \(bits-per-byte\).*", verdict)

    job = service.request("GET", f"/api/ablations/{job_id}")[1]
    result = json.loads((Path(job["output"]) / "ablation.json").read_text())
    assert result["plan"]["tokens_per_run"] == 4096 and result["plan"]["tasks"] == ["reference"]
    assert result["plan"]["items_per_task"] == 4 and result["verdicts"] == [verdict]
