"""The pure parts of incremental runs: cutting inputs into segments, part names and shard numbers, and
stats summed over parts."""

from __future__ import annotations

from curate.config import parse_config
from curate.core.files import identify
from curate.incremental import (
    DEFAULT_LOCAL_SEGMENT_BYTES,
    file_key,
    input_key,
    merge_stats,
    next_shard,
    part_name,
    plan_key,
    plan_segments,
    read_units,
    segment_limits,
)


def _inputs(*sizes: int) -> list[dict]:
    return [{"path": f"f{i}", "size": size, "checksum": f"c{i}"} for i, size in enumerate(sizes)]


def test_segments_respect_file_and_byte_limits():
    inputs = _inputs(10, 10, 10, 50, 10)
    assert [len(s) for s in plan_segments(inputs, None, None)] == [5]
    assert [len(s) for s in plan_segments(inputs, 2, None)] == [2, 2, 1]
    # A file larger than the limit is a segment of its own; the others fill up to it.
    assert [[e["path"] for e in s] for s in plan_segments(inputs, None, 25)] == [
        ["f0", "f1"],
        ["f2"],
        ["f3"],
        ["f4"],
    ]
    assert plan_segments([], 3, None) == []


def test_a_file_larger_than_the_byte_limit_is_cut_into_ranges_when_it_can_be():
    inputs = _inputs(10, 100, 10)

    def split(path, size, limit):
        return [(0, 40), (40, 80), (80, 100)] if path == "f1" else None

    segments = plan_segments(inputs, None, 50, split)
    assert [[(e["path"], e.get("range")) for e in s] for s in segments] == [
        [("f0", None), ("f1", [0, 40])],
        [("f1", [40, 80])],
        [("f1", [80, 100]), ("f2", None)],
    ]
    ranges = [e for s in segments for e in s if "range" in e]
    assert len({input_key(e) for e in ranges}) == 3 and {file_key(e) for e in ranges} == {("f1", 100, "c1")}
    assert read_units(segments[1], split) == [("f1", 40, 80)] and read_units(inputs[:1], split) == ["f0"]
    # A file that cannot be cut stays whole, a segment of its own.
    assert [len(s) for s in plan_segments(inputs, None, 50, lambda *_: None)] == [1, 1, 1]


def test_big_inputs_are_read_in_ranges_by_several_workers():
    def split(path, size, limit):  # records start every 10 bytes
        return [(a, min(a + limit, size)) for a in range(0, size, limit)] if path != "f2" else None

    inputs = _inputs(25, 8, 40)
    assert read_units(inputs, split, max_bytes=10) == [
        ("f0", 0, 10),
        ("f0", 10, 20),
        ("f0", 20, 25),
        "f1",
        "f2",  # cannot be cut: read whole
    ]
    # A segment's range is cut further, within its bounds only.
    assert read_units([{**inputs[0], "range": [10, 25]}], split, max_bytes=10) == [
        ("f0", 10, 20),
        ("f0", 20, 25),
    ]
    assert read_units(inputs, None, max_bytes=10) == ["f0", "f1", "f2"]


def test_local_runner_segments_by_default_others_do_not():
    assert segment_limits(parse_config({})) == (None, DEFAULT_LOCAL_SEGMENT_BYTES)
    portable = parse_config({"runner": {"name": "portable", "job_endpoint": "localhost:1"}})
    assert segment_limits(portable) == (None, None)
    assert segment_limits(parse_config({"run": {"segment_files": 3}})) == (3, None)


def test_plan_key_ignores_the_runner_but_not_the_recipe_or_inputs(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "x"}\n')
    inputs = [identify(str(path))]
    assert inputs[0]["size"] == path.stat().st_size and inputs[0]["checksum"].startswith("sha256:")
    key = plan_key(parse_config({}), inputs, None)
    assert plan_key(parse_config({"runner": {"workers": 7}}), inputs, None) == key
    assert plan_key(parse_config({"stages": {"langid": {"min_score": 0.5}}}), inputs, None) != key
    path.write_text('{"text": "y"}\n')
    assert plan_key(parse_config({}), [identify(str(path))], None) != key
    assert plan_key(parse_config({}), inputs, "web@main") != key


def test_parts_are_named_and_numbered_on():
    assert [part_name(i) for i in range(3)] == ["part", "s0001", "s0002"]
    lineage = {
        "parts": [
            {"shards": [{"path": "shards/shard-00000.parquet"}, {"path": "shards/shard-00001.parquet"}]}
        ]
    }
    assert next_shard(None) == 0 and next_shard(lineage) == 2


def _stats(read: int, kept: int, dup: int) -> dict:
    stages = {
        "read": {"in": read, "out": read, "rejected": {}, "balanced": True},
        "dedup_exact": {"in": read, "out": kept, "rejected": {"duplicate_exact": dup}, "balanced": True},
    }
    return {
        "stages": stages,
        "documents_read": read,
        "documents_kept": kept,
        "documents_rejected": dup,
        "balanced": True,
        "seconds": 1.5,
    }


def test_stats_of_parts_add_up_and_one_part_is_unchanged():
    one = _stats(10, 8, 2)
    assert merge_stats([one]) is one
    merged = merge_stats([one, _stats(5, 5, 0), _stats(7, 4, 3)])
    assert merged["stages"]["dedup_exact"] == {
        "in": 22,
        "out": 17,
        "rejected": {"duplicate_exact": 5},
        "balanced": True,
    }
    assert (merged["documents_read"], merged["documents_kept"], merged["documents_rejected"]) == (22, 17, 5)
    assert merged["balanced"] and merged["parts"] == 3 and merged["seconds"] == 4.5


def test_a_killed_parts_leftovers_are_removed_and_finished_parts_kept(tmp_path):
    from curate.incremental import remove_unfinished

    for name in ("documents/part-00000-of-00001.parquet", "documents/s0001-00000-of-00001.parquet",
                 "index/exact/part-00000-of-00001.parquet", "shards/shard-00000.parquet",
                 "shards/shard-00001.parquet", "documents/beam-temp-s0001-abc/x.parquet"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    lineage = {"parts": [{"part": "part", "shards": [{"path": "shards/shard-00000.parquet"}]}]}
    removed = remove_unfinished(str(tmp_path), lineage)
    assert sorted(removed) == [
        "documents/beam-temp-s0001-abc",
        "documents/s0001-00000-of-00001.parquet",
        "shards/shard-00001.parquet",
    ]
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "documents/part-00000-of-00001.parquet",
        "index/exact/part-00000-of-00001.parquet",
        "shards/shard-00000.parquet",
    ]
