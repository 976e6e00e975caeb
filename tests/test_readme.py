"""The README's two commands are the ones users run and CI runs: keep them true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_opens_with_a_run_command_and_a_test_command() -> None:
    run, test = readme_commands()[:2]
    assert "pip install ." in run
    assert run.endswith("ticker serve")
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines
    assert "TICKER_REQUIRE_ALL_TOOLS=1" in (ROOT / ".ci" / "run").read_text()
