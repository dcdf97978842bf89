"""Build a virtual environment that holds `curate[train]` and nothing else: no Beam, no fastText.

`python tools/light_env.py DEST` makes DEST a venv (no system site packages) that sees exactly the
distributions that `curate`'s base requirements and `torch` resolve to, taken from this environment's
installed copies (linked, not copied: torch alone is gigabytes) so it needs no network, then installs
curate itself from a wheel built from this checkout. The links live in DEST.linked, outside the venv,
named by a .pth file: pip in DEST never writes or uninstalls through them (it treats them as outside the
environment), so nothing done in DEST can change the project's own venv. It is what `pip install
'curate[train]'` gives on a training node, at the versions `make setup` resolved. The test of the light
install (tests/train/test_light_install.py) runs `curate train` in it; `make light-env` builds it once.

`--refresh-curate` only rebuilds and reinstalls the curate wheel (the code under test changes; the
dependencies do not). `--pip SPEC` (repeatable) then installs packages from PyPI over the linked ones and
`--without NAME` leaves a linked distribution out: the side environment of a consumer whose pins conflict
with the project's (mosaicml-streaming needs numpy<2.2: `make mds-env`).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
EXTRA_ROOTS = ["torch"]  # the train extra


def _requirements_closure(roots: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Installed distributions that `roots` need, transitively (markers evaluated here, no extras)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in found or key == "curate":
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{requirement.name} is not installed here; run `make setup` first") from None
        found[key] = dist
        for line in dist.requires or []:
            child = Requirement(line)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                pending.append(child)
    return found


def _curate_base_requirements() -> list[Requirement]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def _linked(venv: Path) -> Path:
    return venv.with_name(venv.name + ".linked")


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _link(dist: metadata.Distribution, site: Path) -> None:
    """Link each top-level file or folder the distribution installed (RECORD) into `site`."""
    origin = Path(str(dist.locate_file("")))
    tops = {Path(str(entry)).parts[0] for entry in dist.files or []}
    for top in sorted(tops):
        if top in ("..", "__pycache__") or top.endswith(".pth"):
            continue
        source, target = origin / top, site / top
        if source.exists() and not target.exists():
            target.symlink_to(source)


def install_curate(venv: Path) -> None:
    """Build curate's wheel from this checkout and install it, without dependencies, into `venv`."""
    with tempfile.TemporaryDirectory() as wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                wheels,
                ".",
            ],
            cwd=REPO,
            check=True,
        )
        (wheel,) = Path(wheels).glob("curate-*.whl")
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
             "--force-reinstall", str(wheel)],
            check=True,
        )  # fmt: skip


def build(venv: Path, pip: list[str], without: list[str]) -> None:
    linked = _linked(venv)
    for old in (venv, linked):
        if old.is_symlink() or old.is_file():
            old.unlink()
        elif old.exists():
            shutil.rmtree(old)  # a folder of links: rmtree unlinks them, never follows them
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    linked.mkdir()
    closure = _requirements_closure(_curate_base_requirements() + [Requirement(n) for n in EXTRA_ROOTS])
    for key, dist in closure.items():
        if key not in without:
            _link(dist, linked)
    (_site_packages(venv) / "_curate_linked.pth").write_text(f"{linked}\n")
    if pip:  # over the links, into DEST's own site-packages; never a second copy of torch
        pins = Path(venv, "linked-pins.txt")
        pins.write_text(f"torch=={closure['torch'].version}\n")
        python = str(venv / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "-q", "-c", str(pins), *pip], check=True)
    install_curate(venv)
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import apache_beam"], capture_output=True, text=True
    )
    if probe.returncode == 0:
        raise SystemExit(f"{venv}: apache_beam imports there; the light environment is not light")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("--refresh-curate", action="store_true")
    parser.add_argument("--pip", action="append", default=[], metavar="SPEC")
    parser.add_argument("--without", action="append", default=[], metavar="NAME")
    args = parser.parse_args()
    if args.refresh_curate and (args.venv / "bin" / "python").exists():
        install_curate(args.venv)
    else:
        build(args.venv, args.pip, args.without)
    print(f"{args.venv}: curate[train] without the pipeline's stack ({os.path.basename(sys.executable)})")


if __name__ == "__main__":
    main()
