"""The command line's first-contact messages: suggestions for typos, quiet ends of pipes, honest help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from curate.cli import main


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [(["rnu"], "did you mean 'run'?"), (["versions", "lgo"], "did you mean 'log'?"),
     (["config", "sho"], "did you mean 'show'?")],
)  # fmt: skip
def test_a_mistyped_command_gets_a_suggestion(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert suggestion in capsys.readouterr().err


def test_output_into_a_closed_pipe_ends_quietly():
    """`curate config show | head`: the reader stops early; no "Broken pipe" error, no traceback."""
    command = [sys.executable, "-m", "curate", "config", "show"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # what `head` does once it has its lines: here before the first write
        errors = process.stderr.read().decode()
        process.wait(timeout=60)
    assert errors == "" and process.returncode in (0, 141)


def test_decont_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        main(["decont", "--help"])
    assert "evaluation-benchmark text out of the training data" in " ".join(capsys.readouterr().out.split())
