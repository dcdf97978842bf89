"""Benchmark: `curate export` throughput and peak memory, per format, at the bench crawl and at 4x of it.

    python bench/export.py [--corpus bench/.corpus] [--scales 1 4] [--formats FORMAT ...]
                           [--json bench/results/export.json] [--shards bench/.work/export]

Input: the main text of the real web pages of ../shared/bench/make_web_corpus.py's crawl (extracted once
with curate's HTML extractor, as bench/tokenize_shards.py does), tokenized with GPT-2's BPE into token
shards in the layout `curate run` writes (curate.train.sample); scale K writes the corpus K times under
distinct ids (kept in bench/.work/export). Each export runs as its own process (`curate export ... --quiet`)
under ../shared/bench/peak_rss.sh; tokens/s is per CPU-second of that process (user + system). Every export is
then re-read with its consumer's reader (`curate export --verify`, measured the same way; MDS in the side
venv of `make mds-env`) and must give the shards' token-stream hash. Memory must not grow with the
dataset: the table shows the peak at each scale.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))
PEAK_RSS = REPO.parent / "shared" / "bench" / "peak_rss.sh"
MDS_ENV = Path.home() / ".cache" / "curate" / "mds-venv"
FORMATS = ["megatron", "mds", "litdata", "hf", "datatrove"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(command: list[str], cwd: str | None = None) -> tuple[float, float, int, str]:
    """(CPU seconds, wall seconds, peak total RSS in MB, stdout) of one command under peak_rss.sh."""
    cpu, wall = children_cpu(), time.monotonic()
    result = subprocess.run(["bash", str(PEAK_RSS), *command], capture_output=True, text=True, cwd=cwd)
    cpu, wall = children_cpu() - cpu, time.monotonic() - wall
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    peak = re.search(r"peak total RSS (\d+) MB", result.stderr)
    return cpu, wall, int(peak.group(1)) if peak else -1, result.stdout


def shards_at(scale: int, texts: Path, cache: Path) -> Path:
    from curate.train.sample import write_sample_shards

    out = cache / f"shards-x{scale}"
    if not (out / "manifest.json").exists():
        write_sample_shards([texts], out, n_shards=4 * scale, row_group_bytes=1 << 20, repeat=scale)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=BENCH / ".corpus", help="WARC folder (built if empty)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--formats", nargs="+", default=FORMATS, choices=FORMATS)
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "export.json")
    parser.add_argument("--shards", type=Path, default=BENCH / ".work" / "export", help="token shards (kept)")
    args = parser.parse_args()
    from bench.results_file import write_results
    from bench.tokenize_shards import corpus_texts
    from curate import export
    from curate.train.data import ShardSet

    if "mds" in args.formats:  # the side venv's curate must be this checkout's (its --verify reads MDS)
        refresh = [sys.executable, str(REPO / "tools" / "light_env.py"), str(MDS_ENV), "--refresh-curate"]
        subprocess.run(refresh, check=True)
    texts = corpus_texts(args.corpus)
    curate = [sys.executable, "-m", "curate"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        for scale in args.scales:
            shards = shards_at(scale, texts, args.shards)
            source = export.source_hash(ShardSet.open(str(shards)))
            for fmt in args.formats:
                dest = Path(scratch) / f"{fmt}-x{scale}"
                cpu, wall, peak, _ = measured([*curate, "export", str(shards), "--format", fmt,
                                               "--output", str(dest), "--quiet"])  # fmt: skip
                python = str(MDS_ENV / "bin" / "python") if fmt == "mds" else sys.executable
                # outside the checkout: the side venv's `python -m curate` is its installed copy
                verify = [python, "-m", "curate", "export", "--verify", str(dest)]
                v_cpu, v_wall, v_peak, out = measured(verify, cwd=scratch)
                verified = json.loads(out) if out.strip() else {"ok": False}
                size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
                rows.append({
                    "scale": scale, "format": fmt, "documents": source.documents, "tokens": source.tokens,
                    "source_hash": source.hexdigest(), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                    "tokens_per_cpu_s": round(source.tokens / cpu), "peak_rss_mb": peak,
                    "output_bytes": size, "verified_by": verified.get("reader"),
                    "verified_hash": verified.get("token_stream_hash"), "verified": bool(verified["ok"]),
                    "verify_cpu_s": round(v_cpu, 2), "verify_wall_s": round(v_wall, 2),
                    "verify_tokens_per_cpu_s": round(source.tokens / v_cpu), "verify_peak_rss_mb": v_peak,
                })  # fmt: skip
                row = rows[-1]
                print(f"x{scale} {fmt:<10} {row['documents']:>7,} docs {row['tokens']:>11,} tokens  export "
                      f"{row['tokens_per_cpu_s']:>11,} tok/CPU-s {peak:>4} MB  verify "
                      f"{row['verify_tokens_per_cpu_s']:>10,} tok/CPU-s {v_peak:>4} MB  "
                      f"hash {row['source_hash'][:12]} verified {row['verified']}", flush=True)  # fmt: skip
                subprocess.run(["rm", "-rf", str(dest)], check=True)
    note = (
        "curate export per format: tokens per CPU-second of the export process, peak total RSS "
        "(../shared/bench/peak_rss.sh); each export then re-read by its consumer's reader (curate export "
        "--verify, its own process: verify_* columns; its peak is mostly the consumer's imports, torch)."
    )
    write_results(args.json, "export", note, rows)
    os.sync()
    return 0 if all(r["verified"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
