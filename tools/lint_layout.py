"""Assemble the installed layout (`curate`, with filters/ as curate.filters and pipelines/ as
curate.pipelines) in a scratch folder, then run the layer contract and the type checker on it.

Static tools resolve `curate.filters` from folders, not through the editable install's import hook, so
they read a copy laid out as the installed package is; paths in their output are mapped back to the repo.
Usage: python tools/lint_layout.py [--repo DIR] [--work DIR] [--no-types]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# installed package -> repository folder (as pyproject's package-dir)
PACKAGE_DIRS = {"curate": "curate", "curate/filters": "filters", "curate/pipelines": "pipelines"}


def assemble(repo: Path, work: Path) -> Path:
    root = work / "src"
    shutil.rmtree(root, ignore_errors=True)
    for installed, folder in PACKAGE_DIRS.items():
        shutil.copytree(repo / folder, root / installed, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _unmap(text: str, root: Path) -> str:
    # Longest prefix first, so curate/filters/x.py reads filters/x.py, not curate/filters/x.py.
    for installed, folder in sorted(PACKAGE_DIRS.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(f"{root}/{installed}/", f"{folder}/").replace(f"{installed}/", f"{folder}/")
    return text


def run(repo: Path, work: Path, types: bool) -> int:
    root = assemble(repo, work)
    env = {**os.environ, "PYTHONPATH": str(root)}
    bindir = Path(sys.executable).parent
    status = 0
    checks = [[str(bindir / "lint-imports"), str(repo / "pyproject.toml"), "--no-cache"]]
    if types:
        checks.append(
            [sys.executable, "-m", "mypy", "--config-file", str(repo / "pyproject.toml"), "-p", "curate"]
        )
    for command in checks:
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        sys.stdout.write(_unmap(result.stdout + result.stderr, root))
        status = status or result.returncode
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--work", type=Path, default=REPO / "build" / "lint")
    parser.add_argument("--no-types", action="store_true", help="Only the layer contract.")
    args = parser.parse_args()
    return run(args.repo.resolve(), args.work.resolve(), not args.no_types)


if __name__ == "__main__":
    sys.exit(main())
