#!/usr/bin/env python3
"""Direct runner vs Apache Flink vs Apache Spark on the bench crawl: documents per CPU-second of every
process involved (JVMs included) and the peak memory of each process.

    python bench/engines.py [--copies 1 4] [--max-docs N] [--runners direct flink spark] [--keep]

The crawl is real HTML (`../shared/bench/make_web_corpus.py [--copies K]`, built on first use). Each
contender runs the default recipe with parallelism 2 on this 2-core machine:

- direct: Beam's Fn API runner, 2 worker processes;
- flink: a local Flink 1.19 session cluster (1 JobManager, 2 TaskManagers of 1 slot, 3584m: 1g of managed
  memory for the sorts, since the crawl's 4 MB pages must fit a sort buffer, 512m of task off-heap
  (direct) memory for Beam's gRPC data plane and a 1.2g heap: less of either failed at 4x), parallelism
  2, Beam's Flink job server, LOOPBACK SDK workers;
- spark: a local Spark 3.5 standalone cluster (master, 2 workers of 1 core), Beam's Spark job server,
  LOOPBACK SDK workers.

The cluster's idle burn (CPU-s per second with no job, over 20 s before the run) is recorded too: it
makes a run's CPU grow with its wall time, which a loaded machine stretches.

CPU is the `curate run` process tree's (the job server and SDK workers are its children, counted when
reaped) plus each cluster process's own and reaped children's CPU (executors, TaskManager slots) over
the run; the clusters' start-up is not counted. Peak memory per process is the largest VmHWM seen for
each role (sampled every 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from results_file import write_results  # noqa: E402

from curate.engines.clusters import FlinkSession, SparkStandalone  # noqa: E402

CORPUS_SCRIPT = REPO.parent / "shared" / "bench" / "make_web_corpus.py"
TICKS = os.sysconf("SC_CLK_TCK")
# 1g of managed memory for the sorts, 512m of task off-heap (direct) memory for Beam's gRPC data plane and
# a 1.2g heap: at 4x, 2304m with no task off-heap died of "Direct buffer memory", and 2880m with 512m of
# it (a 0.55g heap) of "Java heap space" serializing a 38 MB element (docs/engines.md)
FLINK_TM_MEMORY, FLINK_MANAGED, FLINK_TASK_OFF_HEAP = "3584m", "1g", "512m"
IDLE_SECONDS = 20.0


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / TICKS


def _own_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(roots: set[int]) -> dict[int, int]:
    """pid -> the root it descends from, for every live process under ``roots``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (got := _stat(int(entry))):
            parents[int(entry)] = got[0]
    found = {}
    for pid in parents:
        node = pid
        while node and node not in roots:
            node = parents.get(node, 0)
        if node:
            found[pid] = node
    return found


ROLES = (
    ("StandaloneSessionClusterEntrypoint", "flink jobmanager"),
    ("TaskManagerRunner", "flink taskmanager"),
    ("FlinkJobServerDriver", "flink job server"),
    ("SparkJobServerDriver", "spark job server (driver)"),
    ("deploy.master.Master", "spark master"),
    ("deploy.worker.Worker", "spark worker"),
    ("CoarseGrainedExecutorBackend", "spark executor"),
    ("sdk_worker_main", "beam sdk worker"),
    ("curate run", "curate run (driver, LOOPBACK workers)"),
    ("multiprocessing", "direct runner worker"),
    ("apache_beam", "direct runner worker"),
)
HELPER_PEAK_MB = 50  # the launch scripts' short-lived helpers (chmod, rm, ...) are not a role of their own


def _role(pid: int) -> str | None:
    """The process's role, None for a zombie or a small helper the launch scripts run."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    for marker, role in ROLES:
        if marker in command:
            return role
    if not command.strip() or _hwm_mb(pid) < HELPER_PEAK_MB:
        return None
    return "other: " + command.split(" ", 1)[0].rsplit("/", 1)[-1]


class RunFailed(Exception):
    """A contender's run failed; its row records the error line instead of numbers."""


def _cluster_cpu(cluster_pids: list[int]) -> dict[int, float]:
    return {pid: got[1] for pid in cluster_pids if (got := _stat(pid))}


def _wait_children_gone(cluster_pids: list[int], seconds: float = 60.0) -> None:
    """Spark's workers stop their executors after the application ends; their CPU is counted in the
    worker's once it has reaped them, so wait for that (with a deadline)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not [pid for pid, root in _descendants(set(cluster_pids)).items() if pid != root]:
            return
        time.sleep(0.5)


def idle_cpu_rate(cluster_pids: list[int], seconds: float = IDLE_SECONDS) -> float:
    """CPU-seconds per second the started cluster spends with no job (heartbeats, GC, polling threads):
    a cost that grows with a run's wall time rather than with its documents."""
    before = _cluster_cpu(cluster_pids)
    time.sleep(seconds)
    after = _cluster_cpu(cluster_pids)
    return round(sum(after[pid] - before.get(pid, 0.0) for pid in after) / seconds, 3)


def measure(command: list[str], cluster_pids: list[int], log: Path) -> dict:
    """Run ``command``; CPU of its tree (reaped) + the cluster's processes over the run; peak per role."""
    before = _cluster_cpu(cluster_pids)
    peaks: dict[str, float] = {}
    run_tree_cpu: dict[int, float] = {}
    done = threading.Event()
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

        def sample() -> None:
            while not done.wait(0.5):
                for pid, root in _descendants({proc.pid, *cluster_pids}).items():
                    if role := _role(pid):
                        peaks[role] = max(peaks.get(role, 0.0), _hwm_mb(pid))
                    if root == proc.pid and (got := _own_cpu(pid)) is not None:
                        run_tree_cpu[pid] = got  # the last value seen before the process ends

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        _wait_children_gone(cluster_pids)
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        errors = [line for line in log.read_text().splitlines() if line.startswith("curate: error")]
        raise RunFailed(errors[-1] if errors else f"exit status {os.waitstatus_to_exitcode(status)}")
    after = _cluster_cpu(cluster_pids)
    cluster_cpu = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    # wait4 counts the run's children once reaped (the job server JVM); processes that are not reaped by
    # it (the direct runner's workers) are counted from the samples, as bench/pipeline.py does
    run_cpu = max(usage.ru_utime + usage.ru_stime, sum(run_tree_cpu.values()))
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(run_cpu + cluster_cpu, 1),
        "cpu_cluster_s": round(cluster_cpu, 1),
        "peak_mb_per_process": {role: round(mb) for role, mb in sorted(peaks.items())},
    }


def corpus(copies: int, root: Path, max_docs: int | None, given: dict[int, Path]) -> list[str]:
    """The crawl's WARC files at ``copies``: a folder given for it (read only), else built under ``root``."""
    folder = given.get(copies) or root / f"web-corpus-x{copies}"
    if copies not in given and not list(folder.glob("*.warc.gz")):
        subprocess.run(
            [sys.executable, str(CORPUS_SCRIPT), str(folder), "--copies", str(copies)]
            + (["--max-pages", str(max_docs)] if max_docs else []),
            check=True,
        )
    return sorted(str(p) for p in folder.glob("*.warc.gz"))


def run_one(name: str, runner: dict, inputs: list[str], work: Path, cluster_pids: list[int]) -> dict:
    recipe = {"input": inputs, "output": str(work / f"out-{name}"), "runner": runner}
    path = work / f"recipe-{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    command = [sys.executable, "-m", "curate", "run", str(path), "--quiet"]
    try:
        row = measure(command, cluster_pids, work / f"{name}.log")
    except RunFailed as error:
        return {"runner": name, "error": str(error)}
    stats = json.loads((work / f"out-{name}" / "stats.json").read_text())
    row.update(
        runner=name,
        documents=stats["documents_read"],
        kept=stats["documents_kept"],
        docs_per_cpu_s=round(stats["documents_read"] / row["cpu_s"], 2),
    )
    return row


def markdown(rows: list[dict]) -> str:
    """The docs' table: one line per size and runner."""
    lines = [
        "| crawl | runner | docs | wall s | CPU-s (all processes) | docs / CPU-s | largest process peak |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['copies']}x | {row['runner']} | failed: {row['error']} | | | | |")
            continue
        role, peak = max(row["peak_mb_per_process"].items(), key=lambda item: item[1])
        lines.append(
            f"| {row['copies']}x | {row['runner']} | {row['documents']} | {row['wall_s']} | {row['cpu_s']} | "
            f"{row['docs_per_cpu_s']} | {peak} MB ({role}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-docs", type=int, help="Pages per site copy (make_web_corpus --max-pages).")
    parser.add_argument(
        "--corpus",
        action="append",
        default=[],
        metavar="COPIES=DIR",
        help="An already built crawl for that size (make_web_corpus.py DIR --copies COPIES), read only.",
    )
    parser.add_argument("--runners", nargs="+", default=["direct", "flink", "spark"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "curate-bench-engines")
    parser.add_argument("--out", default=str(BENCH / "results" / "engines.json"))
    parser.add_argument("--keep", action="store_true", help="Keep --out's rows for what is not rerun.")
    parser.add_argument("--table", action="store_true", help="Print --out as the docs' table, and stop.")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(Path(args.out).read_text())["rows"]))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    given = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.corpus)}
    rows: list[dict] = []
    for copies in args.copies:
        inputs = corpus(copies, args.work, args.max_docs, given)
        for name in args.runners:
            work = args.work / f"x{copies}-{name}"
            work.mkdir(exist_ok=True)
            if name == "direct":
                row = run_one(name, {"name": "direct", "workers": 2}, inputs, work, [])
            elif name == "flink":
                # managed memory for sort buffers that hold the crawl's largest page (4 MB at 1x)
                with FlinkSession(
                    work / "cluster",
                    taskmanagers=2,
                    tm_memory=FLINK_TM_MEMORY,
                    managed_memory=FLINK_MANAGED,
                    task_off_heap=FLINK_TASK_OFF_HEAP,
                ) as cluster:
                    options = {"flink_master": cluster.master, "parallelism": 2}
                    pids = [p.pid for p in cluster.processes]
                    idle = idle_cpu_rate(pids)
                    row = run_one(name, {"name": "flink", "options": options}, inputs, work, pids)
                    row["cluster_idle_cpu_per_s"] = idle
                    row["taskmanager_memory"] = (
                        f"{FLINK_TM_MEMORY} ({FLINK_MANAGED} managed, {FLINK_TASK_OFF_HEAP} task off-heap)"
                    )
            else:
                with SparkStandalone(work / "cluster", workers=2) as cluster:
                    options = {"spark_master_url": cluster.master}
                    pids = [p.pid for p in cluster.processes]
                    idle = idle_cpu_rate(pids)
                    row = run_one(name, {"name": "spark", "options": options}, inputs, work, pids)
                    row["cluster_idle_cpu_per_s"] = idle
            row.update(copies=copies, parallelism=2)
            rows.append(row)
            if "error" in row:
                print(f"x{copies} {name:<7} FAILED: {row['error']}", flush=True)
                save(rows, args.out, args.keep)
                continue
            print(
                f"x{copies} {name:<7} {row['documents']:>6} docs  {row['wall_s']:>7.1f} s wall  "
                f"{row['cpu_s']:>7.1f} CPU-s  {row['docs_per_cpu_s']:>6.2f} docs/CPU-s  "
                f"peak {max(row['peak_mb_per_process'].values(), default=0):.0f} MB (largest process)",
                flush=True,
            )
            save(rows, args.out, args.keep)  # after each row: a long series keeps what it has measured


def save(rows: list[dict], out: str, keep: bool) -> None:
    """Write ``rows`` to ``out``; with ``keep``, ``out``'s rows for what these do not cover stay."""
    if keep and Path(out).is_file():
        measured = {(row["copies"], row["runner"]) for row in rows}
        earlier = json.loads(Path(out).read_text())["rows"]
        rows = [r for r in earlier if (r["copies"], r["runner"]) not in measured] + rows
    rows = sorted(rows, key=lambda r: (r["copies"], ["direct", "flink", "spark"].index(r["runner"])))
    write_results(
        out,
        "engines",
        "default recipe; engine parallelism 2 on 2 cores; CPU of all processes (JVMs included) over the "
        "run, cluster start-up excluded; peak = the largest VmHWM among the processes of each role",
        rows,
    )


if __name__ == "__main__":
    main()
