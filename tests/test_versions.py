"""One scenario, both backends: the embedded store and lakeFS (a real lakeFS server built from its source,
tests/support/lakefs_server.py). Two real pipeline runs with different
recipes are committed through the run driver's hook, then logged, diffed, checked out, trained from,
merged, raced and killed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from curate.cli import main
from curate.config import parse_config
from curate.core.errors import CurateError
from curate.run import run
from curate.train.data import ShardSet, TokenStream
from curate.versions import open_repository
from curate.versions.compare import compare
from curate.versions.lineage import commit_run

pytestmark = pytest.mark.slow


def _recipe(inputs: list[str], out: Path, **stages) -> dict:
    return {
        "input": {"paths": inputs},
        "output": {"path": str(out)},
        "runner": {"name": "direct", "workers": 1},
        "stages": {"langid": {"languages": ["en"]}, "tokenize": {"shard_tokens": 20_000}, **stages},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory, jsonl_files):
    """Two runs with different recipes (B keeps more: no quality rules, smaller shards); made once."""
    from curate.pipelines.readers import expand_inputs

    made = {}
    for name, stages in (
        ("a", {}),
        ("b", {"quality": {"enabled": False}, "tokenize": {"shard_tokens": 5_000}}),
    ):
        out = tmp_path_factory.mktemp(f"run_{name}")
        config = parse_config(_recipe([str(p) for p in jsonl_files], out, **stages))
        summary = run(config, progress=False)
        made[name] = (config, out, expand_inputs(config.input.paths), summary.stats)
    return made


def _with_dataset(config, dataset: str, branch: str):
    output = config.output.model_copy(update={"dataset": dataset, "branch": branch})
    return config.model_copy(update={"output": output})


def _manifest_shards(folder: Path) -> dict[str, str]:
    return {s["path"]: s["sha256"] for s in json.loads((folder / "manifest.json").read_text())["shards"]}


class Scenario:
    def __init__(self, kind: str, uri: str, runs: dict, server=None):
        self.kind, self.uri, self.runs, self.server = kind, uri, runs, server
        self.repository = open_repository(uri)

    def spec(self, ref: str) -> str:
        return f"{self.uri}/{ref}" if self.kind == "lakefs" else f"{self.uri}@{ref}"

    def commit_run(self, name: str, branch: str) -> str:
        config, out, files, stats = self.runs[name]
        return commit_run(_with_dataset(config, self.uri, branch), str(out), files, stats)


@pytest.fixture(scope="module", params=["embedded", "lakefs"])
def scenario(request, runs, tmp_path_factory):
    """Run A committed to main (tagged v1), run B to branch strict made from main."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CURATE_STORE", str(tmp_path_factory.mktemp("store")))
        server = None
        if request.param == "lakefs":
            server = request.getfixturevalue("lakefs_server")
            patch.setenv("LAKEFS_ENDPOINT", server.endpoint)
            patch.setenv("LAKEFS_ACCESS_KEY_ID", server.access_key_id)
            patch.setenv("LAKEFS_SECRET_ACCESS_KEY", server.secret_access_key)
            name = f"web-{uuid.uuid4().hex[:8]}"
            server.create_repository(name)
            uri = f"lakefs://{name}"
        else:
            uri = "web"
        scenario = Scenario(request.param, uri, runs, server)
        scenario.commit_run("a", "main")
        scenario.repository.tag("v1", "main")
        scenario.repository.branch("strict", "main")
        scenario.commit_run("b", "strict")
        yield scenario


def test_log_shows_both_runs_with_their_lineage(scenario, capsys):
    history = scenario.repository.log("strict")
    newest, older = history[0], next(v for v in history[1:] if v.lineage)
    for version, name in ((newest, "b"), (older, "a")):
        config, _, files, stats = scenario.runs[name]
        lineage = version.lineage
        assert lineage["recipe"]["stages"] == config.model_dump(mode="json")["stages"]
        assert lineage["runner"]["name"] == "direct" and lineage["code"]["curate"]
        assert [(i["path"], i["size"], i["sha256"]) for i in lineage["inputs"]] == [
            (str(Path(f).resolve()), Path(f).stat().st_size, hashlib.sha256(Path(f).read_bytes()).hexdigest())
            for f in files
        ]
        assert lineage["stats"]["documents_kept"] == stats["documents_kept"]
    assert main(["versions", "log", scenario.spec("strict")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"kept {scenario.runs['b'][3]['documents_kept']}  runner direct  inputs 2" in lines[0]
    assert main(["versions", "show", scenario.spec("v1")]) == 0
    shown = capsys.readouterr().out
    assert "runner   direct (workers 1)" in shown and "inputs   2 file(s)" in shown
    assert "sha256:" in shown and "recipe" in shown and "shard_tokens: 20000" in shown


def test_diff_lists_changed_shards_and_stage_stats(scenario):
    diff = scenario.repository.diff("v1", "strict")
    a, b = (_manifest_shards(scenario.runs[n][1]) for n in ("a", "b"))
    assert set(diff["added"]) >= {p for p in b if p not in a}
    assert set(diff["removed"]) >= {p for p in a if p not in b}
    assert set(diff["changed"]) >= {p for p in a.keys() & b.keys() if a[p] != b[p]} | {"stats.json"}
    stats_a, stats_b = scenario.runs["a"][3], scenario.runs["b"][3]
    for stage, entry in diff["stats"]["stages"].items():  # B ran without the quality stage
        out_a = stats_a["stages"].get(stage, {}).get("out")
        out_b = stats_b["stages"].get(stage, {}).get("out")
        delta = out_b - out_a if out_a is not None and out_b is not None else None
        assert entry["out"] == {"a": out_a, "b": out_b, "delta": delta}
    assert set(diff["stats"]["stages"]) == set(stats_a["stages"]) | set(stats_b["stages"])
    assert diff["stats"]["documents_kept"]["delta"] == stats_b["documents_kept"] - stats_a["documents_kept"]
    comparison = compare(scenario.repository, "v1", "strict")  # what `versions diff` prints, on both backends
    tokens = [json.loads((scenario.runs[n][1] / "manifest.json").read_text())["total_tokens"] for n in "ab"]
    assert {t["name"]: (t["a"], t["b"]) for t in comparison["totals"]}["tokens"] == tuple(tokens)
    assert {"key": "stages.quality.enabled", "a": True, "b": False} in comparison["recipe"]


def test_checkout_of_the_first_run_reproduces_its_shards_byte_for_byte(scenario, tmp_path, capsys):
    dest = tmp_path / "co"
    assert main(["versions", "checkout", scenario.spec("v1"), str(dest)]) == 0
    original = scenario.runs["a"][1]
    for path, sha in _manifest_shards(original).items():
        data = (dest / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha and data == (original / path).read_bytes()
    (dest / "shards" / "stray.parquet").write_bytes(b"x")  # not the checkout's: never deleted
    capsys.readouterr()
    assert main(["versions", "checkout", scenario.spec("strict"), str(dest), "--force"]) == 2
    assert "holds 1 file(s) that no checkout wrote, e.g. shards/stray.parquet" in capsys.readouterr().err
    (dest / "shards" / "stray.parquet").unlink()
    assert main(["versions", "checkout", scenario.spec("strict"), str(dest)]) == 2
    err = capsys.readouterr().err
    assert "holds a checkout of" in err and "pass --force to replace it" in err
    assert main(["versions", "checkout", scenario.spec("strict"), str(dest), "--force"]) == 0
    assert sorted(
        p.relative_to(dest).as_posix() for p in dest.rglob("*.parquet") if "shards" in p.parts
    ) == sorted(_manifest_shards(scenario.runs["b"][1]))


def test_the_trainer_and_shards_verify_read_a_tag(scenario, capsys):
    local = TokenStream(ShardSet.open(scenario.runs["a"][1]), 64, shuffle=False)
    version = TokenStream(ShardSet.open(scenario.spec("v1")), 64, shuffle=False)
    expected = [s.inputs for s in local.sequences(epochs=1)]
    got = [s.inputs for s in version.sequences(epochs=1)]
    assert len(got) == len(expected) > 0 and all(
        np.array_equal(x, y) for x, y in zip(got, expected, strict=True)
    )
    assert main(["shards", "verify", scenario.spec("v1")]) == 0
    assert "ok (checksums, schema, EOS, counts, decode round-trip)" in capsys.readouterr().out


def test_shards_inspect_fetches_only_the_shards_it_samples(scenario, capsys, lakefs_requests):
    manifest = json.loads((scenario.runs["b"][1] / "manifest.json").read_text())
    assert len(manifest["shards"]) > 2  # run B wrote several shards; the samples come from the first
    with lakefs_requests() as seen:
        assert main(["shards", "inspect", scenario.spec("strict"), "--samples", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shards"] == len(manifest["shards"]) and len(report["samples"]) == 2
    assert report["total_tokens"] == manifest["total_tokens"]
    if scenario.kind == "lakefs":  # read in place: only what it samples is fetched
        read = {r.query["path"] for r in seen if r.method == "GET" and r.route.endswith("/objects")}
        assert read == {"manifest.json", "tokenizer.json", manifest["shards"][0]["path"]}


def _one_line_error(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("curate: error: ") and "Traceback" not in err
    return err


def test_conflict_missing_repository_and_missing_ref_are_one_clear_line(scenario, tmp_path, capsys):
    repository = scenario.repository
    repository.branch("left", "v1")
    repository.branch("right", "v1")
    repository.commit_output(scenario.runs["b"][1], "left", "b on left")
    variant = shutil.copytree(scenario.runs["a"][1], tmp_path / "a2")
    stats = json.loads((variant / "stats.json").read_text())
    (variant / "stats.json").write_text(json.dumps({**stats, "note": "edited"}))
    repository.commit_output(variant, "right", "a2 on right")
    before = repository.resolve("right").id
    err = _one_line_error(["versions", "merge", scenario.spec("left"), "right"], capsys)
    assert "merging left into right conflicts" in err and "right is unchanged" in err
    assert repository.resolve("right").id == before
    missing_ref = _one_line_error(["versions", "log", scenario.spec("no-such-ref")], capsys)
    assert "no-such-ref: no such branch, tag or commit" in missing_ref
    if scenario.kind == "lakefs":
        endpoint = scenario.server.endpoint
        assert endpoint in err and endpoint in missing_ref
        missing_repo = _one_line_error(["versions", "log", "lakefs://no-such-repo/main"], capsys)
        assert f"lakefs://no-such-repo: no such repository at {endpoint}" in missing_repo
    else:
        missing_repo = _one_line_error(["versions", "log", "no-such-dataset@main"], capsys)
        assert "no-such-dataset@main: no such branch, tag or commit" in missing_repo


def test_bad_credentials_name_the_endpoint_and_key_never_the_secret(scenario, capsys, monkeypatch):
    if scenario.kind != "lakefs":
        pytest.skip("the embedded store has no credentials")
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", "wrong-secret-value")
    err = _one_line_error(["versions", "log", scenario.spec("main")], capsys)
    assert scenario.server.endpoint in err and scenario.server.access_key_id in err and "(401)" in err
    assert "wrong-secret-value" not in err and scenario.server.secret_access_key not in err
    assert "main" in err


_KILLER = """
import os, signal, sys
from curate.versions import open_repository
from curate.versions.compare import compare
def die(path, size):
    if path.startswith("shards/"):
        os.kill(os.getpid(), signal.SIGKILL)
open_repository(sys.argv[1]).commit_output(sys.argv[2], sys.argv[3], "killed", {}, on_progress=die)
"""


def test_a_commit_killed_midway_leaves_the_target_as_it_was_and_a_rerun_completes(scenario):
    repository = scenario.repository
    repository.branch("killed", "v1")
    before, files_before = repository.resolve("killed").id, repository.files("killed")
    out_b = scenario.runs["b"][1]
    process = subprocess.run([sys.executable, "-c", _KILLER, scenario.uri, str(out_b), "killed"], timeout=120)
    assert process.returncode == -9  # SIGKILL, in the middle of storing the shards
    assert repository.resolve("killed").id == before and repository.files("killed") == files_before
    version = repository.commit_output(out_b, "killed", "rerun")
    assert repository.resolve("killed").id == version.id != before
    assert set(repository.files("killed")) == {
        p.relative_to(out_b).as_posix() for p in out_b.rglob("*") if p.is_file() and p.name != "run.log"
    }


def test_two_concurrent_commits_to_one_branch_both_land_in_order_or_one_is_refused(scenario, tmp_path):
    repository = scenario.repository
    repository.branch("race", "v1")
    variant = shutil.copytree(scenario.runs["a"][1], tmp_path / "a2")  # changes what B changes, differently
    (variant / "stats.json").write_text(json.dumps({**scenario.runs["a"][3], "note": "variant"}))
    outputs = {"a": variant, "b": scenario.runs["b"][1]}
    start = repository.resolve("race").id
    barrier, outcomes = threading.Barrier(2, timeout=60), {}
    waited: set[str] = set()

    def commit(name: str) -> None:
        def meet(path: str, size: int) -> None:  # both have started (run branches made) before either lands
            if name not in waited:
                waited.add(name)
                barrier.wait()

        try:
            outcomes[name] = repository.commit_output(outputs[name], "race", f"race {name}", on_progress=meet)
        except CurateError as error:
            outcomes[name] = error

    threads = [threading.Thread(target=commit, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    landed = [n for n, o in outcomes.items() if not isinstance(o, CurateError)]
    refused = [o for o in outcomes.values() if isinstance(o, CurateError)]
    history = {v.id for v in repository.log("race", 20)}
    assert len(outcomes) == 2 and landed
    assert all(outcomes[n].id in history for n in landed) and start in history
    if scenario.kind == "embedded":
        assert len(landed) == 2  # the head moves under a lock: both commits, one after the other
        newest, second = repository.log("race", 2)
        assert second.id == newest.parent and {newest.id, second.id} == {outcomes["a"].id, outcomes["b"].id}
    else:  # both branched from the same head; the second merge conflicts and is refused
        assert len(landed) == 1 and len(refused) == 1
        for error in refused:  # refused, never lost: the run's commit stays on its run branch
            assert "moved while the run was committed" in str(error)
            run_branch = str(error).split("stays on branch ")[1].split(" ")[0]
            assert run_branch in repository.branches()


def test_rerunning_a_versions_recipe_reproduces_its_shards(scenario, tmp_path, capsys):
    if scenario.kind != "lakefs":
        pytest.skip("one rerun (a pipeline run) is enough; the lakeFS backend is the one that travels")
    out = tmp_path / "rerun"
    assert main(["run", "--recipe-from", scenario.spec("v1"), "--output", str(out), "--quiet"]) == 0
    assert _manifest_shards(out) == _manifest_shards(scenario.runs["a"][1])
    newest = scenario.repository.log("main", 1)[0]
    assert newest.lineage["recipe"]["stages"] == scenario.runs["a"][0].model_dump(mode="json")["stages"]


# ---------------------------------------------------------------- comparing, committing by hand, merging


@pytest.fixture
def store_of_runs(runs, tmp_path, monkeypatch):
    """A fresh embedded store: run A committed on main by the run driver's hook, then run B on main."""
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    for name in ("a", "b"):
        config, out, files, stats = runs[name]
        commit_run(_with_dataset(config, "web", "main"), str(out), files, stats)
    return open_repository("web")


def test_a_runs_default_message_names_the_recipe_keys_it_changed(store_of_runs):
    newest, first = store_of_runs.log("main", 2)
    assert first.message.startswith("curate run ") and first.message.endswith("(first version on main)")
    assert newest.message == "stages.quality.enabled true → false; stages.tokenize.shard_tokens 20000 → 5000"


def test_diff_prints_a_table_and_json_of_counts_stages_and_recipe_keys(runs, store_of_runs, capsys):
    newest, first = store_of_runs.log("main", 2)
    manifests = [json.loads((runs[n][1] / "manifest.json").read_text()) for n in ("a", "b")]
    stats = [runs[n][3] for n in ("a", "b")]
    assert main(["versions", "diff", f"web@{first.id[:10]}", "main"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = {
        line.split()[0] + (" " + line.split()[1] if line.startswith("documents") else ""): line
        for line in lines
        if line.strip()
    }
    kept = [s["documents_kept"] for s in stats]
    assert row["documents kept"].split()[2:] == [f"{kept[0]:,}", f"{kept[1]:,}", f"{kept[1] - kept[0]:+,}"]
    tokens = [m["total_tokens"] for m in manifests]
    assert row["tokens"].split()[1:] == [f"{tokens[0]:,}", f"{tokens[1]:,}", f"{tokens[1] - tokens[0]:+,}"]
    assert row["shards"].split()[1:3] == [str(len(m["shards"])) for m in manifests]
    quality = stats[0]["stages"]["quality"]
    assert row["quality"].split()[1:4] == [f"{quality['in']:,}", "→", f"{quality['out']:,}"]
    for reason, count in quality["rejected"].items():  # B turned quality off: every reason went to 0
        assert row[reason].split()[1:] == [f"{count:,}", "0", f"{-count:+,}"]
    assert "  stages.quality.enabled  true → false" in lines
    assert "  stages.tokenize.shard_tokens  20000 → 5000" in lines
    assert main(["versions", "diff", f"web@{first.id}", newest.id, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {t["name"]: t["delta"] for t in record["totals"]}["tokens"] == tokens[1] - tokens[0]
    assert (record["a"]["id"], record["b"]["id"]) == (first.id, newest.id)
    assert {"key": "stages.quality.enabled", "a": True, "b": False} in record["recipe"]


def test_a_folder_committed_by_hand_keeps_its_lineage(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    config, out, files, _ = runs["a"]
    assert main(["versions", "commit", str(out), "web@by-hand", "-m", "by hand"]) == 0
    capsys.readouterr()
    assert main(["versions", "log", "web@by-hand"]) == 0
    line = capsys.readouterr().out.strip()
    assert f"runner direct  inputs {len(files)}" in line and line.endswith("by hand")
    lineage = open_repository("web").resolve("by-hand").lineage
    assert sorted(i["path"] for i in lineage["inputs"]) == sorted(files)
    assert all(
        i["sha256"] == hashlib.sha256(Path(i["path"]).read_bytes()).hexdigest() for i in lineage["inputs"]
    )
    assert lineage["recipe"]["stages"] == config.model_dump(mode="json")["stages"]


def test_verify_requires_exactly_the_manifests_shards_on_disk(runs, tmp_path, capsys):
    mixed = shutil.copytree(runs["b"][1], tmp_path / "b")
    assert main(["shards", "verify", str(mixed), "--no-decode"]) == 0
    capsys.readouterr()
    stray = mixed / "shards" / "shard-00099.parquet"  # another run's shard slipped in
    shutil.copyfile(runs["a"][1] / "shards" / "shard-00000.parquet", stray)
    assert main(["shards", "verify", str(mixed), "--no-decode"]) == 1
    assert f"{stray}: not listed in manifest.json" in capsys.readouterr().out
    stray.unlink()
    listed = sorted((mixed / "shards").iterdir())[-1]
    listed.unlink()
    assert main(["shards", "verify", str(mixed), "--no-decode"]) == 1
    assert f"{listed}: missing" in capsys.readouterr().out


def test_a_source_wins_merge_of_two_runs_is_one_runs_whole_version(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    repository = open_repository("web")
    variant = shutil.copytree(runs["a"][1], tmp_path / "a2")  # main moves on with a variant of A
    (variant / "stats.json").write_text(json.dumps({**runs["a"][3], "note": "variant"}))
    repository.commit_output(runs["a"][1], "main", "A")
    repository.branch("b", "main")
    repository.commit_output(variant, "main", "A variant")
    repository.commit_output(runs["b"][1], "b", "B")  # 4+ shards where A has fewer
    assert main(["versions", "merge", "web@b", "main", "--strategy", "source-wins"]) == 0
    assert repository.files("main") == repository.files("b")
    capsys.readouterr()
    assert main(["shards", "verify", "web@main"]) == 0
    assert "ok" in capsys.readouterr().out
