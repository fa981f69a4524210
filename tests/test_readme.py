"""The README's two set-up commands are what CI runs and what users copy."""

from __future__ import annotations

import re

from helpers import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_readme_has_exactly_two_setup_commands():
    commands = _commands()
    assert len(commands) == 2
    install_run, install_test = commands
    assert "streamseg demo" in install_run and "pip install" in install_run
    assert "pytest" in install_test and "pip install" in install_test
    # a plain `torch` requirement would pull a multi-GB CUDA build on CPU machines: the pin picks
    # the local CPU wheel here and the CUDA wheel from PyPI on GPU machines
    assert "torch==" in install_run and "torch==" in install_test


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci
