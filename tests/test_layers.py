"""The one-way layer contract is enforced: `make lint` fails when text logic imports the application."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = REPO / "tools" / "lint_layout.py"


def _copy_tree(dest: Path) -> Path:
    for folder in ("curate", "filters", "pipelines", "tools"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint_layers(repo: Path, work: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LINT), "--repo", str(repo), "--work", str(work), "--no-types"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layers_hold_on_the_tree(tmp_path):
    result = _lint_layers(REPO, tmp_path / "work")
    assert result.returncode == 0, result.stdout
    assert "one-way layers KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken", "named"),
    [
        pytest.param(
            "langid.py",
            "from curate.run import run  # a filter reaching up",
            "one-way layers BROKEN",
            ["curate.filters.langid", "curate.run"],
            id="filter-importing-the-application",
        ),
        pytest.param(
            "quality.py",
            "import apache_beam  # text logic must not know Beam",
            "text logic knows nothing of Beam BROKEN",
            [],
            id="filter-importing-beam",
        ),
    ],
)
def test_a_filter_reaching_up_breaks_the_contract(tmp_path, module, line, broken, named):
    repo = _copy_tree(tmp_path / "repo")
    source = repo / "filters" / module
    source.write_text(source.read_text() + f"\n{line}\n")
    result = _lint_layers(repo, tmp_path / "work")
    assert result.returncode != 0
    assert broken in result.stdout
    assert all(name in result.stdout for name in named), named


def test_installed_names_live_under_curate(tmp_path):
    """Outside the repository only `curate.*` imports: no generic top-level `filters` or `pipelines`."""
    code = (
        "import importlib.util as u, curate.filters.langid, curate.pipelines.curation, curate.core.errors\n"
        "print(u.find_spec('filters'), u.find_spec('pipelines'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None"]


def test_the_command_line_imports_its_heavy_layers_only_when_a_command_runs():
    """`curate --help` and argument errors answer at once: Beam, pyarrow, torch and the web framework are
    imported by the command that needs them, not when the parser is built."""
    probe = (
        "import sys\n"
        "from curate.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = ('apache_beam', 'pyarrow', 'torch', 'fastapi', 'tokenizers', 'fasttext')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
