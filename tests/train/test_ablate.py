"""`curate ablate` end to end: two tiny versions, 2 seeds each, then the table, page and attachments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curate.cli import main

pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")
from curate.train.ablate import compare  # noqa: E402
from curate.versions.embedded import EmbeddedRepository, LocalStore  # noqa: E402


def fewer_shards(source: Path, into: Path) -> Path:
    """The same tokenizer, one shard fewer: a second variant of the data."""
    shutil.copytree(source, into)
    manifest = json.loads((into / "manifest.json").read_text())
    dropped = manifest["shards"].pop()
    (into / dropped["path"]).unlink()
    manifest["total_tokens"] -= dropped["n_tokens"]
    (into / "manifest.json").write_text(json.dumps(manifest))
    return into


def test_ablate_trains_scores_and_attaches(shard_dir: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    repository = EmbeddedRepository("tiny", LocalStore(tmp_path / "store"))
    a = repository.commit_output(shard_dir, "full", "all shards")
    b = repository.commit_output(fewer_shards(shard_dir, tmp_path / "fewer"), "fewer", "one shard fewer")
    out = tmp_path / "ablation"
    argv = [
        "ablate",
        "tiny@full",
        "tiny@fewer",
        "--seeds",
        "2",
        "--steps",
        "50",
        "--batch-size",
        "2",
        "--tasks",
        "reference",
        "arc_easy",
        "--limit",
        "6",
        "--device",
        "cpu",
        "--output",
        str(out),
    ]
    assert main([*argv, "--only-seed", "1"]) == 0  # one share of the work, as another process would do it
    assert "seed 1: 2 runs scored" in capsys.readouterr().out
    assert not (out / "ablation.json").exists()
    assert main([*argv, "--finished-only"]) == 0  # a table of what is done so far, attached nowhere
    partial = json.loads((out / "ablation.json").read_text())
    assert partial["plan"]["partial"] == {"tiny@full": 1, "tiny@fewer": 1}
    assert "Partial" in (out / "index.html").read_text() and repository.attachments(a.id) == {}
    capsys.readouterr()
    assert main(argv) == 0  # the rest, then the table
    printed = capsys.readouterr().out
    assert "tiny@fewer better than tiny@full on" in printed
    assert "tiny@full seed 1: already scored" in printed and "tiny@full seed 0: already" not in printed

    result = json.loads((out / "ablation.json").read_text())
    assert result["plan"]["steps"] == 50 and result["plan"]["seeds"] == 2
    assert [v["commit"] for v in result["variants"]] == [a.id, b.id]
    for task in ("reference", "arc_easy"):
        for label in ("tiny@full", "tiny@fewer"):
            bpb = result["table"][task][label]["bpb"]
            assert len(bpb["seeds"]) == 2 and 1.0 < bpb["mean"] < 9.0
    assert "acc" in result["table"]["arc_easy"]["tiny@full"]
    (pair,) = result["pairs"]
    low, high = pair["tasks"]["reference"]["bpb"]["ci"]
    assert low <= pair["tasks"]["reference"]["bpb"]["difference"] <= high
    assert json.loads((out / "progress.json").read_text())["done"] == 4
    assert pair["verdict"] in (out / "index.html").read_text()

    for version in (a, b):
        (attachment,) = repository.attachments(version.id).values()
        assert attachment["verdicts"] == result["verdicts"]
    assert main(["versions", "show", "tiny@fewer"]) == 0
    assert f"ablation {out}/index.html" in capsys.readouterr().out


def run(label: str, seed: int, nats: list[float], correct: list[int]) -> dict:
    per_item = {"gold_nats": nats, "gold_bytes": [10] * len(nats), "correct": correct}
    bpb = sum(nats) / (10 * len(nats)) / 0.6931471805599453
    return {
        "variant": label,
        "seed": seed,
        "tasks": {
            "t": {"items": len(nats), "bpb": bpb, "acc": sum(correct) / len(correct), "per_item": per_item}
        },
    }


def test_a_clear_difference_is_significant_and_seed_noise_is_not():
    items = 50
    better = {
        "A": [run("A", s, [20.0 + s] * items, [0] * items) for s in range(3)],
        "B": [run("B", s, [10.0 + s] * items, [1] * items) for s in range(3)],
    }
    (pair,) = compare(better, ["t"])["pairs"]
    assert pair["tasks"]["t"]["bpb"]["b_better"] and pair["tasks"]["t"]["bpb"]["significant"]
    assert (
        pair["verdict"]
        == "B better than A on 1 of 1 tasks (bits-per-byte), significant on 1; significantly worse on 0"
    )
    noisy = {
        "A": [run("A", s, [10.0 + 5 * s] * items, [0] * items) for s in range(3)],
        "B": [run("B", s, [10.5 + 5 * ((s + 1) % 3)] * items, [0] * items) for s in range(3)],
    }
    (pair,) = compare(noisy, ["t"])["pairs"]
    assert not pair["tasks"]["t"]["bpb"]["significant"]


def test_the_proxy_tokenizer_is_small_deterministic_and_trained_on_the_reference_text(tmp_path, capsys):
    from curate.core.tokenizer import load
    from curate.train.tasks import reference_texts

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["proxy-tokenizer", str(first), "--vocab", "512"]) == 0
    assert main(["proxy-tokenizer", str(second), "--vocab", "512"]) == 0
    assert first.read_bytes() == second.read_bytes()  # every version built with it gets the same sha256
    tokenizer = load(first.read_text())
    assert tokenizer.get_vocab_size() == 512
    text = reference_texts()[0]
    assert tokenizer.decode(tokenizer.encode(text).ids) == text
    assert len(tokenizer.encode(text).ids) < len(text.encode()) / 2  # merges learned from that text
    assert "512 tokens" in capsys.readouterr().out
