#!/usr/bin/env python3
"""Benchmark curate's dedup on a real-HTML crawl with known mirrors: quality, speed and memory.

For each --copies N it builds the crawl with ../shared/bench/make_web_corpus.py (real pages from two
Debian-packaged websites, a share re-crawled as mirrors with 0-4% word edits, listed in mirrors.jsonl),
extracts the text with `curate dedup --no-exact --no-minhash`, then:

- runs `curate dedup` (exact + MinHash with the default recipe, multi-process direct runner) and scores
  it against the exact Jaccard of 5-word shingles of the extracted texts: recall per Jaccard bin over
  the mirror pairs (one of the two removed), and precision of near-duplicate removals (the removed
  document has Jaccard >= 0.5 with a kept one: its cluster's survivor or its mirror partner);
- measures the signature step alone on one core, each in a fresh process (docs/s, peak RSS):
  curate's vectorised batches, datasketch's `MinHash.bulk` on the same shingles, a straightforward
  per-document datasketch loop (sha1 of each 5-gram), and datatrove's `MinhashDedupSignature` (run from
  its own venv, bench/.venv-datatrove) with the same bands x rows;
- records peak memory of the whole dedup run per process (Beam workers vs. the local runner process,
  which holds the local shuffle), the same for a run with dedup off (read + write only: what the
  runner and the I/O cost by themselves), and docs/s per core (documents / CPU seconds of the run);
- with --rerun-check, reruns dedup on one worker and checks that it keeps the same documents.

Usage: python -m bench.dedup [--copies 1 2] [--work /tmp/curate-bench-dedup] [--workers 2]
Writes bench/results/dedup.json and prints a table. Needs root once (make_web_corpus apt-installs two
Debian packages). Setup for the datatrove comparison:
  python -m venv bench/.venv-datatrove && bench/.venv-datatrove/bin/pip install datatrove==0.10.1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MAKE_CORPUS = REPO.parent / "shared" / "bench" / "make_web_corpus.py"
DATATROVE_PYTHON = HERE / ".venv-datatrove" / "bin" / "python"
BINS = [(0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0001)]
SIGNATURE_METHODS = ("curate", "datasketch_bulk", "datasketch_loop", "datatrove")


# ------------------------------------------------------------------ signature step, one process each


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's peak, kept across exec)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _texts_jsonl(path: str, limit: int | None):
    with open(path, encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if limit is not None and i >= limit:
                return
            yield json.loads(line)["text"]


def _batches(iterable, size: int):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def signature_worker(method: str, texts_path: str, limit: int | None, bands: int, rows: int) -> dict:
    """Run one signature implementation over the texts, streaming; report docs/s on this one core."""
    if method == "datatrove":
        return _datatrove_worker(texts_path, limit, bands, rows)
    import numpy as np
    from datasketch import MinHash

    sys.path.insert(0, str(REPO))
    from curate.filters.dedup_text import Normalization, shingle_hashes
    from curate.filters.minhash import LshParams, MinHasher, band_keys

    params = LshParams(bands, rows)
    num_perm = bands * rows
    norm = Normalization()
    hasher = MinHasher(num_perm, seed=1)
    n_docs = n_keys = 0
    baseline = _peak_rss_mb()
    start, cpu0 = time.perf_counter(), time.process_time()
    for batch in _batches(_texts_jsonl(texts_path, limit), 256):
        n_docs += len(batch)
        if method == "curate":
            shingles = [shingle_hashes(norm.words(t)) for t in batch]
            signatures = hasher.signatures(shingles)
            n_keys += sum(
                len(band_keys(s, params)) for s, sh in zip(signatures, shingles, strict=True) if len(sh)
            )
        elif method == "datasketch_bulk":
            shingles = [shingle_hashes(norm.words(t)).tolist() for t in batch]
            for m in MinHash.bulk(shingles, num_perm=num_perm, seed=1, hashfunc=int):
                n_keys += len(band_keys(m.hashvalues, params))
        elif method == "datasketch_loop":
            for text in batch:
                words = norm.words(text)
                m = MinHash(num_perm=num_perm, seed=1)
                m.update_batch([" ".join(words[i : i + 5]).encode() for i in range(max(1, len(words) - 4))])
                n_keys += len(band_keys(m.hashvalues, params))
        else:
            raise SystemExit(f"unknown signature method {method!r}")
    del np
    return _signature_result(method, n_docs, start, cpu0, baseline, n_keys)


def _signature_result(method, n_docs, start, cpu0, baseline, n_keys) -> dict:
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {
        "method": method,
        "docs": n_docs,
        "band_keys": n_keys,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "docs_per_s_per_core": round(n_docs / cpu, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_mb": round(baseline, 1),
    }


def _datatrove_worker(texts_path: str, limit: int | None, bands: int, rows: int) -> dict:
    import tempfile

    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    step = MinhashDedupSignature(
        tempfile.mkdtemp(prefix="dt-sig-"),
        MinhashConfig(n_grams=5, num_buckets=bands, hashes_per_bucket=rows),
    )
    step.get_shingles("warm up the word tokenizer")  # spaCy loads lazily; keep it out of the timing
    docs = (Document(text=t, id=str(i)) for i, t in enumerate(_texts_jsonl(texts_path, limit)))
    counted = {"n": 0}

    def counting():
        for doc in docs:
            counted["n"] += 1
            yield doc

    baseline = _peak_rss_mb()
    start, cpu0 = time.perf_counter(), time.process_time()
    step.run(counting())
    return _signature_result("datatrove", counted["n"], start, cpu0, baseline, counted["n"] * bands)


def run_signature_method(method: str, texts: Path, limit: int | None, bands: int, rows: int) -> dict | None:
    python = str(DATATROVE_PYTHON) if method == "datatrove" else sys.executable
    if method == "datatrove" and not DATATROVE_PYTHON.exists():
        print(f"  (skipping datatrove: {DATATROVE_PYTHON} missing; see the module docstring)")
        return None
    args = [python, "-m", "bench.dedup", "_signatures", method, str(texts), str(bands), str(rows)]
    if limit:
        args += ["--limit", str(limit)]
    done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        print(f"  signature method {method} failed:\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------- whole dedup with curate


class TreeMemory:
    """Peak RSS (VmHWM) of a process and every descendant, sampled from /proc while it runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peaks: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _children() -> dict[int, list[int]]:
        tree: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                tree.setdefault(ppid, []).append(int(entry))
        return tree

    def _sample(self) -> None:
        tree, todo = self._children(), [self.pid]
        while todo:
            pid = todo.pop()
            todo += tree.get(pid, [])
            try:
                with open(f"/proc/{pid}/status") as handle:
                    status = dict(line.split(":", 1) for line in handle if ":" in line)
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmd = handle.read().replace(b"\0", b" ").decode(errors="replace")[:160]
            except OSError:
                continue
            hwm = int(status.get("VmHWM", "0 kB").split()[0]) / 1024
            if hwm > self.peaks.get(pid, (0.0, ""))[0]:
                self.peaks[pid] = (hwm, cmd)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        runner = self.peaks.get(self.pid, (0.0, ""))[0]
        workers = [mb for pid, (mb, _) in self.peaks.items() if pid != self.pid]
        return {
            "runner_process_peak_rss_mb": round(runner, 1),
            "max_worker_peak_rss_mb": round(max(workers, default=0.0), 1),
            "worker_processes": len(workers),
        }


def curate_cli(args: list[str]) -> dict:
    """Run `python -m curate ARGS` and return wall time, CPU time of the whole tree and peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "curate", *args], cwd=REPO)
    with TreeMemory(process.pid) as memory:
        code = process.wait()
    if code != 0:
        raise SystemExit(f"curate {' '.join(args)} failed with exit code {code}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "cpu_seconds": round(cpu, 2),
        **memory.summary(),
    }


# ----------------------------------------------------------------------------------------- scoring


def read_parquet_rows(folder: Path, columns: list[str]) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    return [row for path in files for row in pq.read_table(path, columns=columns).to_pylist()]


def score(corpus: Path, extracted: list[dict], out: Path) -> dict:
    sys.path.insert(0, str(REPO))
    from curate.filters.dedup_text import Normalization, jaccard, shingle_set

    norm = Normalization()
    text_of = {row["id"]: row["text"] for row in extracted}
    id_of_url = {row["url"]: row["id"] for row in extracted}
    shingles: dict[str, set] = {}

    def shingles_of(doc_id: str) -> set:
        if doc_id not in shingles:
            shingles[doc_id] = shingle_set(norm.apply(text_of[doc_id]), 5)
        return shingles[doc_id]

    rejected = read_parquet_rows(out / "rejected", ["id", "reason", "dup_of", "dup_cluster"])
    removed = {r["id"]: r for r in rejected if r["reason"] in ("duplicate_exact", "duplicate_near")}
    kept = {r["id"] for r in read_parquet_rows(out / "documents", ["id"])}

    pairs, missing = [], 0
    partner: dict[str, str] = {}
    with open(corpus / "mirrors.jsonl", encoding="utf-8") as handle:
        for line in handle:
            pair = json.loads(line)
            a, b = id_of_url.get(pair["original"]), id_of_url.get(pair["mirror"])
            if a is None or b is None:
                missing += 1
                continue
            partner[a], partner[b] = b, a
            pairs.append((a, b, jaccard(shingles_of(a), shingles_of(b))))

    curve = []
    for lo, hi in BINS:
        in_bin = [(a, b) for a, b, j in pairs if lo <= j < hi]
        found = sum(1 for a, b in in_bin if a in removed or b in removed)
        curve.append(
            {
                "bin": f"{lo:.1f}-{min(hi, 1.0):.1f}",
                "pairs": len(in_bin),
                "recall": _ratio(found, len(in_bin)),
            }
        )
    high = [(a, b) for a, b, j in pairs if j >= 0.8]
    high_found = sum(1 for a, b in high if a in removed or b in removed)

    near = [r for r in removed.values() if r["reason"] == "duplicate_near"]
    good, low = 0, []
    for r in near:
        candidates = [r["dup_cluster"], partner.get(r["id"])]
        best = max(
            (jaccard(shingles_of(r["id"]), shingles_of(c)) for c in candidates if c in kept and c in text_of),
            default=0.0,
        )
        if best >= 0.5:
            good += 1
        else:
            low.append({"id": r["id"], "best_jaccard_with_kept": round(best, 3)})
    return {
        "documents": len(extracted),
        "mirror_pairs": len(pairs),
        "mirror_pairs_not_extracted": missing,
        "removed_exact": sum(1 for r in removed.values() if r["reason"] == "duplicate_exact"),
        "removed_near": len(near),
        "recall_curve": curve,
        "recall_jaccard_ge_0_8": _ratio(high_found, len(high)),
        "pairs_jaccard_ge_0_8": len(high),
        "precision_near": _ratio(good, len(near)),
        "near_removals_below_0_5": low[:20],
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


# -------------------------------------------------------------------------------------------- main


def _outcome(out: Path) -> set[tuple]:
    """Which documents a dedup run kept and why it rejected the others (to compare two runs)."""
    kept = {(r["id"], "kept") for r in read_parquet_rows(out / "documents", ["id"])}
    return kept | {(r["id"], r["reason"]) for r in read_parquet_rows(out / "rejected", ["id", "reason"])}


def bench_copies(
    copies: int,
    work: Path,
    workers: int,
    sig_limit: int | None,
    bands: int,
    rows: int,
    rerun_check: bool = False,
) -> dict:
    corpus = work / f"corpus-{copies}"
    if not (corpus / "mirrors.jsonl").exists():
        subprocess.run([sys.executable, str(MAKE_CORPUS), str(corpus), "--copies", str(copies)], check=True)
    extracted_dir = work / f"extracted-{copies}"
    if not (extracted_dir / "documents").exists():
        inputs = [str(p) for p in sorted(corpus.glob("*.warc.gz"))]
        curate_cli(
            ["dedup", *sum((["--input", p] for p in inputs), []), "--output", str(extracted_dir)]
            + ["--no-exact", "--no-minhash", "--workers", str(workers), "--quiet"]
        )
    extracted = read_parquet_rows(extracted_dir / "documents", ["id", "url", "text"])
    texts = work / f"texts-{copies}.jsonl"
    if not texts.exists():
        with open(texts, "w", encoding="utf-8") as handle:
            for row in extracted:
                handle.write(json.dumps({"id": row["id"], "text": row["text"]}) + "\n")

    print(f"copies={copies}: {len(extracted):,} documents; signature step on one core ...", flush=True)
    signatures = {m: run_signature_method(m, texts, sig_limit, bands, rows) for m in SIGNATURE_METHODS}

    print(
        f"copies={copies}: curate dedup (exact + MinHash, default recipe, {workers} workers) ...", flush=True
    )
    out = work / f"dedup-{copies}"
    run = curate_cli(
        ["dedup", "--input", str(extracted_dir / "documents" / "*.parquet"), "--output", str(out)]
        + ["--workers", str(workers), "--quiet"]
    )
    # The same run with both dedup stages off: what reading and writing the documents cost by themselves
    # on this runner (its workers' memory grows with the input files' size, dedup or not).
    baseline = curate_cli(
        ["dedup", "--input", str(extracted_dir / "documents" / "*.parquet"), "--output", str(out) + "-base"]
        + ["--no-exact", "--no-minhash", "--workers", str(workers), "--quiet"]
    )
    run["read_write_only"] = baseline
    run["worker_rss_added_by_dedup_mb"] = round(
        run["max_worker_peak_rss_mb"] - baseline["max_worker_peak_rss_mb"], 1
    )
    run["docs_per_s_per_core"] = round(len(extracted) / run["cpu_seconds"], 1)
    run["docs_per_s_wall"] = round(len(extracted) / run["seconds"], 1)
    if rerun_check:
        print(f"copies={copies}: rerun on one worker to compare survivors ...", flush=True)
        again = work / f"dedup-{copies}-rerun"
        curate_cli(
            ["dedup", "--input", str(extracted_dir / "documents" / "*.parquet"), "--output", str(again)]
            + ["--workers", "1", "--quiet"]
        )
        run["same_survivors_on_one_worker_rerun"] = _outcome(out) == _outcome(again)
    return {
        "copies": copies,
        "quality": score(corpus, extracted, out),
        "signatures": signatures,
        "dedup": run,
    }


def print_report(results: list[dict]) -> None:
    for result in results:
        q = result["quality"]
        head = f"copies={result['copies']}: {q['documents']:,} documents, {q['mirror_pairs']:,} mirror pairs"
        print(f"\n== {head}")
        print("  recall per true-Jaccard bin (one of the pair removed):")
        for row in q["recall_curve"]:
            recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
            print(f"    {row['bin']:>8}  pairs {row['pairs']:>5}  recall {recall}")
        print(
            f"  recall at Jaccard >= 0.8: {q['recall_jaccard_ge_0_8']} ({q['pairs_jaccard_ge_0_8']} pairs)"
            f"   precision of near-dup removals: {q['precision_near']}"
            f" ({q['removed_near']} near, {q['removed_exact']} exact removals)"
        )
        sigs = result["signatures"]
        ours = sigs.get("curate")
        print(f"  {'signature step (1 core)':<26}{'docs/s':>10}{'peak RSS MB':>13}{'curate is x faster':>20}")
        for method, r in sigs.items():
            if r is None:
                continue
            ratio = ours["docs_per_s_per_core"] / r["docs_per_s_per_core"] if ours else float("nan")
            print(f"  {method:<26}{r['docs_per_s_per_core']:>10,.0f}{r['peak_rss_mb']:>13,.0f}{ratio:>20.2f}")
        d = result["dedup"]
        print(
            f"  whole curate dedup run: {d['seconds']}s wall, {d['docs_per_s_per_core']:,} docs/s per core, "
            f"peak RSS: worker {d['max_worker_peak_rss_mb']} MB, local runner process "
            f"{d['runner_process_peak_rss_mb']} MB"
        )
        base = d["read_write_only"]
        print(
            f"  same run with dedup off (read + write only): worker {base['max_worker_peak_rss_mb']} MB, "
            f"runner {base['runner_process_peak_rss_mb']} MB -> dedup adds "
            f"{d['worker_rss_added_by_dedup_mb']} MB per worker"
        )
        if "same_survivors_on_one_worker_rerun" in d:
            print(
                f"  rerun on one worker gives the same survivors: {d['same_survivors_on_one_worker_rerun']}"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_signatures":
        sub = argparse.ArgumentParser()
        sub.add_argument("mode")
        sub.add_argument("method")
        sub.add_argument("texts")
        sub.add_argument("bands", type=int)
        sub.add_argument("rows", type=int)
        sub.add_argument("--limit", type=int)
        a = sub.parse_args()
        print(json.dumps(signature_worker(a.method, a.texts, a.limit, a.bands, a.rows)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-bench-dedup"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--signature-limit", type=int, help="Documents per signature measurement.")
    parser.add_argument(
        "--rerun-check", action="store_true", help="Rerun dedup on one worker; compare the survivors."
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "dedup.json")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from curate.filters.minhash import choose_lsh_params
    from curate.pipelines.dedup_minhash import DedupMinhashConfig

    cfg = DedupMinhashConfig()
    params = choose_lsh_params(cfg.threshold, cfg.num_perm, cfg.false_negative_weight, cfg.bands, cfg.rows)
    args.work.mkdir(parents=True, exist_ok=True)
    results = [
        bench_copies(
            n, args.work, args.workers, args.signature_limit, params.bands, params.rows, args.rerun_check
        )
        for n in args.copies
    ]
    print_report(results)
    report = {
        "recipe": {**cfg.model_dump(), "bands_used": params.bands, "rows_used": params.rows},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
