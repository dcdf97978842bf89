"""The direct runner's SDK workers, forked from one process that has already imported what they run.

With ``workers > 1`` Beam's Fn API runner starts every SDK worker as a fresh ``python -m
apache_beam.runners.worker.sdk_worker_main``, and each spends about 2 CPU-s importing Beam, pyarrow, numpy
and curate before its first element: on a laptop-sized run, a tenth of all its CPU. A zygote imports them
once and forks each worker from itself. Beam's bookkeeping is unchanged: the runner still starts one
subprocess per worker, a small client (``zygote_client.py``) that hands its environment, working folder
and standard streams to the zygote, waits for the forked worker and exits with its status.

The zygote is forked from the driver at the start of a run, when the driver has imported its modules but
built nothing, so workers share no run state with it: everything they use still reaches them through the
pipeline, as on an engine. Where forking the driver is not safe (another Python thread runs: curate used
as a library, under a test runner; or gRPC's own threads exist, from an earlier pipeline in this process)
a fresh interpreter is started as the zygote instead, which still saves all imports but one.

Nothing outlives the run: the zygote ends when the driver closes its end of a pipe or dies (Linux's
parent-death signal), a worker when the zygote dies or its client is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import select
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from apache_beam.transforms.environments import SubprocessSDKEnvironment

CLIENT = Path(__file__).with_name("zygote_client.py")
# What every worker imports before its first element. The stage modules come with the pipeline builder;
# the libraries a stage loads in its DoFn's setup() are imported by each worker (its own models).
PRELOAD = ("apache_beam.runners.worker.sdk_worker_main", "curate.pipelines.curation")
HEADER = struct.Struct("!Q")  # the length of a request's JSON body
STATUS = struct.Struct("!i")  # a worker's exit code (negative: the signal that ended it)
# Native threads that survive a fork harmlessly: OpenBLAS's idle pool carries the process's own name,
# jemalloc (pyarrow) rebuilds its background thread in the child.
FORK_SAFE_THREADS = frozenset({"jemalloc_bg_thd"})
_PR_SET_PDEATHSIG = 1


@dataclass
class WorkerZygote:
    """A running zygote: ``environment`` is the Beam environment whose workers it forks."""

    socket_path: str
    pid: int
    forked: bool  # forked from the driver (else a fresh interpreter)
    _stop: int  # the driver's end of the pipe whose closing ends the zygote
    _process: subprocess.Popen[bytes] | None

    @property
    def environment(self) -> SubprocessSDKEnvironment:
        command = [sys.executable, "-I", "-S", str(CLIENT), self.socket_path]
        # Beam runs it with a shell; `exec` makes the client the process Beam kills when it gives up
        # on a worker, so that the zygote sees it hang up and kills the worker too.
        return SubprocessSDKEnvironment.from_command_string("exec " + shlex.join(command))

    def close(self) -> None:
        """End the zygote (and any worker still running), wait for it and remove its socket."""
        try:
            self._end()
        finally:
            shutil.rmtree(os.path.dirname(self.socket_path), ignore_errors=True)

    def _end(self) -> None:
        os.close(self._stop)
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            return
        pidfd = os.pidfd_open(self.pid)
        try:
            ended, _, _ = select.select([pidfd], [], [], 10)
            if not ended:
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        finally:
            os.close(pidfd)


@contextlib.contextmanager
def worker_zygote(workers: int, fork: bool | None = None) -> Iterator[WorkerZygote | None]:
    """A zygote for ``workers`` SDK worker processes for the run inside the block; none for one worker
    (it runs in the driver's process), off Linux, or where it cannot start (the workers are then
    started as Beam starts them). ``fork``: as `start`."""
    if workers < 2 or not sys.platform.startswith("linux"):  # pidfds and parent-death signals: Linux
        yield None
        return
    try:
        zygote = start(fork)
    except OSError as error:  # e.g. a temporary folder whose path is too long for a Unix socket
        logging.getLogger(__name__).warning("workers start as fresh interpreters: %s", error)
        yield None
        return
    try:
        yield zygote
    finally:
        zygote.close()


def start(fork: bool | None = None) -> WorkerZygote:
    """Fork the zygote from this process (``fork``; by default where `fork_is_safe`), else start it as a
    fresh interpreter."""
    folder = tempfile.mkdtemp(prefix="curate-zygote-")  # private (0700): only this user may connect
    socket_path = os.path.join(folder, "socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(socket_path)
        listener.listen(64)
    except OSError:
        listener.close()
        os.rmdir(folder)
        raise
    stop_read, stop_write = os.pipe()
    os.set_inheritable(stop_write, False)
    try:
        if fork_is_safe() if fork is None else fork:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # else the child would write what is buffered once more
            pid = os.fork()
            if pid == 0:
                os.close(stop_write)
                _exit_after(lambda: serve(listener, stop_read, os.getppid(), folder))
            return WorkerZygote(socket_path, pid, True, stop_write, None)
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__, str(listener.fileno()), str(stop_read), folder],
            pass_fds=(listener.fileno(), stop_read),
            stdin=subprocess.DEVNULL,
        )
        return WorkerZygote(socket_path, process.pid, False, stop_write, process)
    except BaseException:
        os.close(stop_write)
        raise
    finally:
        listener.close()
        os.close(stop_read)


def fork_is_safe() -> bool:
    """Whether this process can be forked without carrying a lock another thread holds: no Python thread
    but this one, and no native thread but the fork-safe ones (gRPC's would be there after an earlier
    pipeline ran in this process; forking them is how gRPC children hang)."""
    if threading.active_count() > 1 or not sys.platform.startswith("linux"):
        return False
    try:
        tasks = os.listdir("/proc/self/task")
        own = Path(f"/proc/self/task/{os.getpid()}/comm").read_text().strip()
        names = [Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in tasks]
    except OSError:
        return False
    return all(name == own or name in FORK_SAFE_THREADS for name in names)


def serve(listener: socket.socket, stop: int, parent: int, folder: str) -> None:
    """The zygote: import what workers need, then fork one for each client until ``stop`` closes."""
    _die_with(parent)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Ctrl-C reaches the whole process group: the driver handles it and then closes the zygote.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in PRELOAD:
        importlib.import_module(module)
    gc.freeze()  # imported objects stay out of the collector's sight: their pages stay shared after fork
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(stop, selectors.EVENT_READ, "stop")
    workers: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, its client's connection)
    try:
        while True:
            for key, _events in selector.select():
                if key.data == "stop":
                    return
                if key.data == "accept":
                    connection, _ = listener.accept()
                    try:
                        pid = _fork_worker(connection, listener, stop, selector)
                    except (OSError, ValueError) as error:  # a bad request costs that client only
                        print(f"curate worker zygote: {error}", file=sys.stderr, flush=True)
                        connection.close()
                        continue
                    pidfd = os.pidfd_open(pid)
                    workers[pidfd] = (pid, connection)
                    selector.register(pidfd, selectors.EVENT_READ, "exit")
                    selector.register(connection, selectors.EVENT_READ, pidfd)
                elif key.data == "exit":  # a worker ended: tell its client how
                    pid, connection = workers.pop(key.fd)
                    _, status = os.waitpid(pid, 0)
                    selector.unregister(key.fd)
                    os.close(key.fd)
                    with contextlib.suppress(KeyError):  # unless its client has hung up already
                        selector.unregister(connection)
                    with contextlib.suppress(OSError):
                        connection.sendall(STATUS.pack(os.waitstatus_to_exitcode(status)))
                    connection.close()
                else:  # the client hung up before its worker ended (the runner killed it)
                    pid, _connection = workers[key.data]
                    selector.unregister(key.fileobj)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
    finally:
        for pid, _connection in workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, "socket"))
            os.rmdir(folder)


def _fork_worker(
    connection: socket.socket, listener: socket.socket, stop: int, selector: selectors.BaseSelector
) -> int:
    """Read a client's request and fork its worker; returns the worker's pid."""
    header, streams, _flags, _address = socket.recv_fds(connection, HEADER.size, 3)
    (size,) = HEADER.unpack(header)
    body = bytearray()
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ConnectionError("a zygote client hung up mid-request")
        body += chunk
    request = json.loads(body)
    zygote = os.getpid()
    pid = os.fork()
    if pid:
        for stream in streams:
            os.close(stream)
        return pid
    selector.close()
    listener.close()
    os.close(stop)
    connection.close()
    _exit_after(lambda: _run_worker(request, streams, zygote))
    raise AssertionError("unreachable")


def _run_worker(request: dict[str, object], streams: list[int], zygote: int) -> None:
    """In the forked worker: become the process Beam would have started, then run the SDK harness."""
    _die_with(zygote)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
    for number, stream in enumerate(streams):
        os.dup2(stream, number)
        os.close(stream)
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(str(request["cwd"]))
    root = logging.getLogger()
    for handler in list(root.handlers):  # a fresh interpreter has none; sdk_worker_main adds its own
        root.removeHandler(handler)
    sys.argv = ["sdk_worker_main"]
    importlib.import_module("apache_beam.runners.worker.sdk_worker_main").main(sys.argv)


def _exit_after(body: Callable[[], None]) -> None:
    """Run ``body`` in a forked child and leave with os._exit, so the parent's atexit handlers and
    buffered output never run twice."""
    code = 0
    try:
        body()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # the child must never return into the parent's code
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """Have Linux kill this process when ``parent`` ends; end now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


if __name__ == "__main__":  # the zygote as a fresh interpreter: LISTENER_FD STOP_FD FOLDER
    _listener = socket.socket(fileno=int(sys.argv[1]))
    _exit_after(lambda: serve(_listener, int(sys.argv[2]), os.getppid(), sys.argv[3]))
