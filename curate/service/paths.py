"""Confinement of request paths to the service's roots.

A path is resolved the way the filesystem would (relative to the first root, `..` collapsed, every
symlink followed) and must then lie inside a root; URL-encoded forms (``%2e%2e``, ``%2f``) are checked
decoded too, so a path that means the same thing to some other layer cannot slip out. Object-store URLs
are refused: the service runs on local files only.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from urllib.parse import unquote

GLOB_CHARS = set("*?[")


class PathOutsideRoots(Exception):
    """A request named a path outside every root (the app answers 403)."""

    def __init__(self, field: str, path: str):
        super().__init__(f"{field}: '{path}' is outside the service's roots")
        self.field = field
        self.path = path


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _resolve(path: str, roots: tuple[Path, ...]) -> Path:
    candidate = Path(path).expanduser() if path.startswith("~") else Path(path)
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    return Path(os.path.realpath(candidate))


def confine(path: str, roots: tuple[Path, ...], field: str) -> Path:
    """``path`` resolved, or PathOutsideRoots; never touches anything but the path's own ancestors."""
    if not isinstance(path, str) or not path or "\x00" in path or "://" in path:
        raise PathOutsideRoots(field, str(path))
    resolved = _resolve(path, roots)
    if not _inside(resolved, roots):
        raise PathOutsideRoots(field, path)
    decoded = unquote(path)
    if decoded != path:
        confine(decoded, roots, field)
    return resolved


def confine_pattern(pattern: str, roots: tuple[Path, ...], field: str) -> tuple[str, list[Path]]:
    """A path or glob: its fixed part and every file it matches must lie inside the roots.

    Returns the absolute pattern (what the run will expand) and the matched files."""
    if not isinstance(pattern, str) or "://" in pattern:
        raise PathOutsideRoots(field, str(pattern))
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    base = confine(str(Path(*fixed)) if fixed else ".", roots, field)
    rest = parts[len(fixed) :]
    absolute = str(base.joinpath(*rest)) if rest else str(base)
    if ".." in rest:
        raise PathOutsideRoots(field, pattern)
    matches = [Path(os.path.realpath(m)) for m in sorted(glob.glob(absolute, recursive=True))]
    for match in matches:
        if not _inside(match, roots):
            raise PathOutsideRoots(field, pattern)
    return absolute, [m for m in matches if m.is_file()]
