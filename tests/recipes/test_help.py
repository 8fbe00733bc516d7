"""`python -m recipes.<folder>.<tool> --help` for every tool under recipes/assets, probes and reports: each one's
imports resolve from where it lives and its command line parses before any work. Run in-process (runpy), so the
whole set costs one import of torch."""

import runpy
import sys
import warnings

import pytest

from tests.support import REPO

TRAIN_FILES = {"recipes.reports.benchmark.paired_trainer"}
"""Modules ./run_train.sh runs as TRAIN_FILE: they train, they have no --help."""


def _tools() -> list[str]:
    """Every module with a `__main__` block and every package with a __main__.py, under the three tool folders."""
    tools = []
    for folder in ("assets", "probes", "reports"):
        for path in sorted((REPO / "recipes" / folder).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            if path.name == "__main__.py":
                tools.append(module.removesuffix(".__main__"))
            elif 'if __name__ == "__main__":' in path.read_text() and module not in TRAIN_FILES:
                tools.append(module)
    return tools


@pytest.mark.parametrize("module", _tools())
def test_help_exits_0_with_a_usage(module, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with warnings.catch_warnings(), pytest.raises(SystemExit) as exit_:
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: another test imported the module before
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")
