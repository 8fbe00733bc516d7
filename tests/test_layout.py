"""One concept, one package: the choices with registries are read only inside their own packages."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OWNERS = {"signal": ("let_components/terms/", "let_components/tokens/"),
          "token_alignment": ("let_components/terms/", "let_components/tokens/"),
          "stop_when": ("let_components/stop/",)}
"""A [let] key -> the packages that may read it (a term checks the token alignment it needs, and back)."""


def _reads_of_let_keys(source: str) -> list[tuple[str, int]]:
    """(key, line) of every `<...>.let.<key>` or `let.<key>` attribute read and getattr(let, "<key>")."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in OWNERS:
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "let":
                found.append((node.attr, node.lineno))
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in OWNERS):
            found.append((node.args[1].value, node.lineno))
    return sorted(found, key=lambda read: read[1])


def test_the_finder_sees_every_way_of_reading_a_key():
    source = ("a = job_config.let.signal\nb = let.token_alignment == 'x'\nc = getattr(let, 'stop_when')\n"
              "signal.signal(1)\n")
    assert _reads_of_let_keys(source) == [("signal", 1), ("token_alignment", 2), ("stop_when", 3)]


@pytest.mark.parametrize("root", ["let_components", "recipes"])
def test_no_module_outside_its_package_reads_signal_token_alignment_or_stop_when(root):
    stray = []
    for path in sorted((REPO / root).rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        for key, line in _reads_of_let_keys(path.read_text()):
            if not relative.startswith(OWNERS[key]):
                stray.append(f"{relative}:{line} reads let.{key}")
    assert not stray, "\n".join(stray)
