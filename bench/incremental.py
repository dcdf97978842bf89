"""Incremental and memory-bounded curation, measured on the real-HTML bench crawl.

    python bench/incremental.py [--copies 1 4] [--workers 2] [--parts memory append against lines]

- memory: the default recipe on K copies of the crawl (make_web_corpus.py --copies K): wall time, peak RSS
  summed over the process tree and of the largest process (../shared/bench/peak_rss.sh); for K > 1 also
  segmented by the size of one copy, with the kept-document count compared to the single segment's.
- append: a crawl of 10 files; a base version of 9, then `--append` with all 10, vs a full run of all
  10: CPU seconds of each (the processes' user + system time), and their ratio.
- against: dedup stages alone on the 10th file, with and without `against` the 9-file version: the
  extra CPU per document for joining the version's index.
- lines: dedup_lines alone after extraction vs extraction alone, on one file: documents per CPU-second.

Prints a table and writes bench/results/incremental.json. CPU times are the process tree's
(RUSAGE_CHILDREN), so a loaded machine slows wall time more than them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SHARED_BENCH = REPO.parent / "shared" / "bench"
CURATE = [sys.executable, "-m", "curate"]
PEAK = re.compile(r"peak total RSS (\d+) MB · largest process (\d+) MB: (.*)")
ONLY_DEDUP = {"langid": {"enabled": False}, "quality": {"enabled": False}, "tokenize": {"enabled": False}}


def corpus(root: Path, copies: int, records_per_file: int = 2000) -> list[str]:
    folder = root / f"copies-{copies}-rpf-{records_per_file}"
    if not sorted(folder.glob("*.warc.gz")):
        print(f"building {folder} (make_web_corpus.py --copies {copies}) ...", flush=True)
        command = [
            sys.executable,
            str(SHARED_BENCH / "make_web_corpus.py"),
            str(folder),
            "--copies",
            str(copies),
        ]
        command += ["--records-per-file", str(records_per_file), "--no-install"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return [str(p) for p in sorted(folder.glob("*.warc.gz"))]


class ProcessPeaks:
    """Peak RSS of each process under a root pid (sampled every 0.5 s, like peak_rss.sh), so that the
    driver's peak and the largest worker's can be told apart (peak_rss.sh reports only the largest)."""

    def __init__(self, root: int):
        self.root = root
        self.peaks: dict[int, tuple[int, str]] = {}  # pid -> (peak RSS bytes, command line)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        tree, frontier = [], [self.root]
        while frontier:
            pid = frontier.pop()
            tree.append(pid)
            frontier += [child for child, parent in parents.items() if parent == pid]
        return tree

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.5):
            for pid in self._tree():
                try:
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                    if rss > self.peaks.get(pid, (0, ""))[0]:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                        self.peaks[pid] = (rss, cmd.strip())
                except (OSError, IndexError, ValueError):
                    continue

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        python = [
            (rss, cmd)
            for rss, cmd in self.peaks.values()
            if cmd.split() and Path(cmd.split()[0]).name.startswith("python")
        ]
        driver = [rss for rss, cmd in python if " -m curate run " in f"{cmd} "]
        workers = sorted((rss for rss, cmd in python if " -m curate run " not in f"{cmd} "), reverse=True)
        return {
            "driver_peak_mb": round(max(driver) / 2**20) if driver else None,
            "largest_worker_peak_mb": round(workers[0] / 2**20) if workers else None,
            "worker_peaks_mb": [round(rss / 2**20) for rss in workers],
        }


def curate_run(
    recipe: dict, work: Path, name: str, extra: list[str] | None = None, env: dict | None = None
) -> dict:
    """One `curate run` under peak_rss.sh: wall and CPU seconds, peak memory (the tree's, the largest
    process's, the driver's and each worker's), and its stats."""
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", str(SHARED_BENCH / "peak_rss.sh"), *CURATE, "run", str(path), "--quiet", *(extra or [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    sampler = ProcessPeaks(process.pid)
    _, stderr = process.communicate()
    per_process = sampler.stop()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed:\n{stderr[-3000:]}")
    peak = PEAK.search(stderr)
    stats = json.loads((Path(recipe["output"]["path"]) / "stats.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "peak_total_mb": int(peak.group(1)) if peak else None,
        "peak_largest_process_mb": int(peak.group(2)) if peak else None,
        "largest_process": peak.group(3).strip()[:120] if peak else None,
        **per_process,
        "documents_read": stats["documents_read"],
        "documents_kept": stats["documents_kept"],
        "parts": stats.get("parts", 1),
        "stats": stats,
    }


def recipe(inputs: list[str], out: Path, workers: int, **extra) -> dict:
    return {"input": inputs, "output": {"path": str(out)}, "runner": {"workers": workers}, **extra}


def bench_memory(args: argparse.Namespace, work: Path, results: dict, save=lambda partial: None) -> dict:
    """Rows for ``args.copies`` (and ``args.modes``) replace those in ``results``; others are kept."""
    for copies in args.copies:
        files = corpus(args.corpus_root, copies)
        input_bytes = sum(os.path.getsize(f) for f in files)
        print(
            f"memory: {copies}x ({len(files)} files, {input_bytes / 1e6:.0f} MB compressed) ...", flush=True
        )
        row = results.setdefault(f"{copies}x", {})
        row.update({"files": len(files), "input_mb": round(input_bytes / 1e6, 1)})
        if "default" in args.modes:
            row["default"] = curate_run(
                recipe(files, work / f"mem-{copies}", args.workers), work, f"mem-{copies}"
            )
            save(results)
        if copies > 1 and "segmented" in args.modes:
            one_copy = sum(os.path.getsize(f) for f in corpus(args.corpus_root, 1))
            segmented = recipe(
                files, work / f"mem-{copies}-seg", args.workers, run={"segment_bytes": one_copy + 1}
            )
            row["segmented"] = curate_run(segmented, work, f"mem-{copies}-seg")
            save(results)
        if "default" in row and "segmented" in row:
            a, b = row["default"]["documents_kept"], row["segmented"]["documents_kept"]
            row["kept_difference_pct"] = round(100 * (b - a) / a, 3)
    return results


def bench_append(args: argparse.Namespace, work: Path) -> dict:
    files = corpus(args.corpus_root, 1, records_per_file=800)[:10]
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    env = {"CURATE_STORE": str(store)}
    print(f"append: base of {len(files) - 1} files, then --append with {len(files)} ...", flush=True)
    base = recipe(
        files[:-1], work / "base", args.workers, output={"path": str(work / "base"), "dataset": "web"}
    )
    base_run = curate_run(base, work, "append-base", env=env)
    appended = curate_run(
        recipe(files, work / "appended", args.workers), work, "append", ["--append", "web@main"], env
    )
    full = curate_run(recipe(files, work / "full", args.workers), work, "append-full")
    return {
        "files": len(files),
        "new_files": 1,
        "base": base_run,
        "append": appended,
        "full_rerun": full,
        "append_cpu_fraction": round(appended["cpu_s"] / full["cpu_s"], 3),
        "kept_append_vs_full": [appended["documents_kept"], full["documents_kept"]],
    }


def bench_against(args: argparse.Namespace, work: Path) -> dict:
    files = corpus(args.corpus_root, 1, records_per_file=800)[:10]
    version = work / "base"  # written by bench_append (its index is what `against` reads)
    if not (version / "index" / "index.json").is_file():
        raise SystemExit("run the append part first (it writes the 9-file version)")
    index_rows = sum(1 for _ in (version / "index" / "minhash").glob("*.parquet"))
    print("against: dedup of the 10th file with and without against the 9-file version ...", flush=True)
    plain = curate_run(recipe(files[-1:], work / "dedup-plain", 1, stages=ONLY_DEDUP), work, "dedup-plain")
    stages = {
        **ONLY_DEDUP,
        "dedup_exact": {"against": [str(version)]},
        "dedup_minhash": {"against": [str(version)]},
    }
    joined = curate_run(recipe(files[-1:], work / "dedup-against", 1, stages=stages), work, "dedup-against")
    base_kept = json.loads((version / "stats.json").read_text())["documents_kept"]
    docs = plain["stats"]["stages"]["dedup_exact"]["in"]
    return {
        "documents": docs,
        "version_documents": base_kept,
        "index_files": index_rows,
        "plain": plain,
        "against": joined,
        "rejected_duplicate_of_version": sum(
            joined["stats"]["stages"][s]["rejected"].get("duplicate_of_version", 0)
            for s in ("dedup_exact", "dedup_minhash")
        ),
        "extra_cpu_ms_per_document": round(1000 * (joined["cpu_s"] - plain["cpu_s"]) / docs, 2),
        "extra_cpu_us_per_version_document": round(1e6 * (joined["cpu_s"] - plain["cpu_s"]) / base_kept, 1),
    }


def bench_lines(args: argparse.Namespace, work: Path) -> dict:
    files = corpus(args.corpus_root, 1)[:1]
    print("lines: dedup_lines after extraction vs extraction alone, one file ...", flush=True)
    off = {**ONLY_DEDUP, "dedup_exact": {"enabled": False}, "dedup_minhash": {"enabled": False}}
    extract_only = curate_run(recipe(files, work / "lines-off", 1, stages=off), work, "lines-off")
    on = {**off, "dedup_lines": {"enabled": True}}
    with_lines = curate_run(recipe(files, work / "lines-on", 1, stages=on), work, "lines-on")
    stage = with_lines["stats"]["stages"]["dedup_lines"]
    extra = with_lines["cpu_s"] - extract_only["cpu_s"]
    return {
        "documents": stage["in"],
        "lines_removed": stage.get("lines_removed"),
        "chars_removed": stage.get("chars_removed"),
        "documents_changed": stage.get("documents_changed"),
        "boilerplate_only": stage["rejected"].get("boilerplate_only", 0),
        "extract_only": extract_only,
        "with_dedup_lines": with_lines,
        "stage_cpu_s": round(extra, 2),
        "docs_per_cpu_s": round(stage["in"] / extra, 0) if extra > 0 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["memory", "append", "against", "lines"])
    parser.add_argument("--modes", nargs="+", default=["default", "segmented"], help="memory: which runs")
    parser.add_argument("--corpus-root", type=Path, default=BENCH / ".corpus-incremental")
    parser.add_argument("--work", type=Path, default=BENCH / ".work-incremental")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "incremental.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["machine"] = {"cpu_count": os.cpu_count(), "workers": args.workers}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(part: str, partial: dict) -> None:
        results[part] = partial
        args.out.write_text(json.dumps(results, indent=1) + "\n")

    for part in args.parts:
        if part == "memory":
            rows = results.get("memory", {})
            save(part, bench_memory(args, args.work, rows, lambda partial: save("memory", partial)))
        else:
            save(part, globals()[f"bench_{part}"](args, args.work))
    print_table(results)


def _slim(run: dict) -> str:
    kept = f"kept {run['documents_kept']:,}/{run['documents_read']:,} ({run['parts']} part(s))"
    return (
        f"{run['wall_s']:>7.0f}s wall {run['cpu_s']:>7.0f}s CPU  peak {run['peak_total_mb']:>6,} MB total, "
        f"{run['peak_largest_process_mb']:>6,} MB largest (driver {run.get('driver_peak_mb')}, "
        f"worker {run.get('largest_worker_peak_mb')})  {kept}"
    )


def print_table(results: dict) -> None:
    for copies, row in results.get("memory", {}).items():
        if "default" in row:
            print(f"{copies:>4} default    {_slim(row['default'])}")
        if "segmented" in row and "kept_difference_pct" in row:
            print(
                f"{copies:>4} segmented  {_slim(row['segmented'])}  kept {row['kept_difference_pct']:+.3f}%"
            )
    if "append" in results:
        a = results["append"]
        print(f"append 1 new of {a['files']} files: {_slim(a['append'])}")
        print(f"full rerun:                {_slim(a['full_rerun'])}")
        print(f"append CPU / full rerun CPU: {a['append_cpu_fraction']:.2f}")
    if "against" in results:
        g = results["against"]
        print(
            f"against a version of {g['version_documents']:,} documents: "
            f"+{g['extra_cpu_ms_per_document']} ms CPU per new document "
            f"({g['documents']:,} documents; {g['rejected_duplicate_of_version']} rejected)"
        )
    if "lines" in results:
        line = results["lines"]
        print(
            f"dedup_lines: {line['docs_per_cpu_s']} docs/CPU-s; removed {line['lines_removed']:,} lines "
            f"({line['chars_removed']:,} chars) from {line['documents_changed']:,} "
            f"of {line['documents']:,} docs"
        )


if __name__ == "__main__":
    main()
