"""KenLM language models for the perplexity stage: build KenLM's own tools, then train a model.

No pretrained KenLM model can be had offline, and the `kenlm` Python module only queries models. The
trainer (`lmplz`) and converter (`build_binary`) are built from the `kenlm` sdist's C++ source, once,
into a cache directory. Training text is normalised with `filters.perplexity.normalize_line`, the same
function the stage applies at query time, so scores mean what they meant when the model was trained.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from curate.core.errors import CurateError
from curate.core.files import open_text
from curate.filters.perplexity import load_sentencepiece, normalize_line

KENLM_SDIST = "kenlm==0.3.0"  # PyPI sdist carrying lm/builder (lmplz) and build_binary sources
TOOLS = ("lmplz", "build_binary")
BOOST_HINT = (
    "apt-get install -y cmake zlib1g-dev libboost-program-options-dev libboost-system-dev "
    "libboost-thread-dev libboost-test-dev"
)

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def tools_dir() -> Path:
    """Where built tools are cached: $CURATE_HOME/kenlm/bin, else ~/.cache/curate/kenlm/bin."""
    home = os.environ.get("CURATE_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "curate"
    return base / "kenlm" / "bin"


def find_tools() -> dict[str, Path] | None:
    """Paths of lmplz and build_binary: the cache first, then PATH; None if either is missing."""
    found: dict[str, Path] = {}
    for tool in TOOLS:
        cached = tools_dir() / tool
        on_path = shutil.which(tool)
        if cached.is_file() and os.access(cached, os.X_OK):
            found[tool] = cached
        elif on_path:
            found[tool] = Path(on_path)
        else:
            return None
    return found


def _run(cmd: list[str], cwd: Path, log: Path, what: str, hint: str = "") -> None:
    with log.open("ab") as out:
        result = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise CurateError(f"{what} failed ({tail}); full log: {log}{hint}")


_BUILD_HINT = f". Building KenLM needs cmake, a C++ compiler, zlib and Boost: {BOOST_HINT}"


def _download_sdist(dest: Path, log: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "kenlm"]
    cmd += ["--no-build-isolation", KENLM_SDIST, "-d", str(dest)]
    try:
        _run(cmd, dest, log, f"pip download {KENLM_SDIST}")
    except CurateError as error:
        raise CurateError(f"{error}; or pass --sdist PATH to a downloaded kenlm-*.tar.gz") from None
    return next(dest.glob("kenlm-*.tar.gz"))


def build_tools(
    sdist: str | Path | None = None, jobs: int = 2, force: bool = False, say: Say = _quiet
) -> dict[str, Path]:
    """Build lmplz and build_binary from the kenlm sdist (downloaded when not given) into `tools_dir()`."""
    target = tools_dir()
    if not force and all((target / tool).is_file() for tool in TOOLS):
        return {tool: target / tool for tool in TOOLS}
    if shutil.which("cmake") is None:
        raise CurateError(f"building KenLM needs cmake: {BOOST_HINT}")
    target.mkdir(parents=True, exist_ok=True)
    log = target.parent / "build.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="curate-kenlm-") as tmp:
        work = Path(tmp)
        if sdist is None:
            say(f"downloading the {KENLM_SDIST} source")
            sdist = _download_sdist(work, log)
        with tarfile.open(sdist) as archive:
            archive.extractall(work / "src", filter="data")
        source = next(p.parent for p in (work / "src").glob("*/CMakeLists.txt"))
        build = work / "build"
        say(f"configuring KenLM (log: {log})")
        configure = ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
        _run(configure, work, log, "cmake", _BUILD_HINT)
        say(f"compiling lmplz and build_binary with {jobs} jobs")
        cmd = ["cmake", "--build", str(build), "--target", *TOOLS, "--", f"-j{jobs}"]
        _run(cmd, work, log, "make lmplz build_binary", _BUILD_HINT)
        for tool in TOOLS:
            staged = target / f".{tool}.tmp"
            shutil.copy2(build / "bin" / tool, staged)
            os.replace(staged, target / tool)  # atomic: a half-copied tool is never found
    say(f"KenLM tools in {target}")
    return {tool: target / tool for tool in TOOLS}


def ensure_tools(say: Say = _quiet) -> dict[str, Path]:
    """The tools, building them (once, cached) when absent."""
    return find_tools() or build_tools(say=say)


# ----------------------------------------------------------------------------------------- training


def _is_jsonl(path: Path) -> bool:
    return any(suffix in (".jsonl", ".json", ".ndjson") for suffix in path.suffixes)


def corpus_lines(paths: Iterable[str | Path], text_field: str = "text") -> Iterator[str]:
    """Raw lines of the corpus: plain text files line by line; JSONL files' `text_field`, line by line.
    `.gz` and `.zst` are decompressed."""
    for path in map(Path, paths):
        if not path.is_file():
            raise CurateError(f"{path}: corpus file not found")
        with open_text(path.open("rb"), path.name, errors="replace", newline=None) as handle:
            if not _is_jsonl(path):
                yield from handle
                continue
            for number, row in enumerate(handle, 1):
                if not row.strip():
                    continue
                try:
                    text = json.loads(row)[text_field]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise CurateError(
                        f"{path}: line {number}: not a JSON object with a '{text_field}' field; "
                        "pass --text-field NAME"
                    ) from None
                yield from str(text).split("\n")


def training_lines(
    paths: Iterable[str | Path], text_field: str = "text", tokenize: Callable[[str], str] | None = None
) -> Iterator[str]:
    """Corpus lines as the model will see them at query time: normalised, tokenised, non-empty."""
    for raw in corpus_lines(paths, text_field):
        line = normalize_line(raw)
        if line:
            yield tokenize(line) if tokenize else line


@dataclass(frozen=True)
class TrainResult:
    output: Path
    lines: int
    tokens: int
    seconds: float


def train(
    corpus: Sequence[str | Path],
    output: str | Path,
    order: int = 5,
    memory: str = "1G",
    text_field: str = "text",
    sentencepiece: str | None = None,
    say: Say = _quiet,
) -> TrainResult:
    """Train a KenLM model with lmplz (modified Kneser-Ney); write ARPA if `output` ends in .arpa, else
    KenLM's binary format (faster to load)."""
    started = time.monotonic()
    output = Path(output)
    corpus_paths = [Path(path) for path in corpus]
    for path in corpus_paths:
        if not path.is_file():
            raise CurateError(f"{path}: corpus file not found")
    tools = ensure_tools(say)
    tokenize = load_sentencepiece(sentencepiece) if sentencepiece else None
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="curate-lmplz-", dir=output.parent) as tmp:
        work = Path(tmp)
        arpa = work / "model.arpa"
        log = work / "lmplz.log"
        # --skip_symbols: web text contains "<s>"; --discount_fallback: small corpora lack the n-gram
        # count-of-counts that Kneser-Ney discounts are estimated from.
        cmd = [str(tools["lmplz"]), "-o", str(order), "-S", memory, "-T", str(work)]
        cmd += ["--skip_symbols", "--discount_fallback", "--arpa", str(arpa)]
        lines = tokens = 0
        with log.open("wb") as err:
            process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=err, stderr=err)
            assert process.stdin is not None
            try:
                for line in training_lines(corpus_paths, text_field, tokenize):
                    process.stdin.write(line.encode("utf-8") + b"\n")
                    lines += 1
                    tokens += len(line.split())
            except BrokenPipeError:
                pass  # lmplz died; its exit code and log say why
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                process.stdin.close()
            code = process.wait()
        if lines == 0:
            raise CurateError("curate lm train: the corpus has no text lines to train on")
        if code != 0:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise CurateError(f"lmplz failed (exit {code}): {tail}")
        staged = work / "model.out"
        if output.suffix == ".arpa":
            shutil.move(arpa, staged)
        else:
            _run([str(tools["build_binary"]), str(arpa), str(staged)], work, log, "build_binary")
        os.replace(staged, output)
    return TrainResult(output, lines, tokens, time.monotonic() - started)
