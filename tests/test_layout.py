"""One concept, one package; one owner per decision: the layers of let_components import only downward, each choice
with a registry is read only inside its own package, where the teacher comes from is read in one module, and one
component answers whether the teacher is still needed."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "let_components"

LAYERS = [
    {"schedule", "platform"},
    {"config"},
    {"dry_run"},
    {"registry", "record", "guard", "pipeline_loss", "validate", "data"},
    {"preemption"},
    {"tokens"},
    {"teacher"},
    {"terms", "stop"},
    {"student"},
    {"prestart"},
    {"trainer"},
]
"""let_components' modules and packages, lowest first: each imports only from layers below it (and itself)."""

OWNERS = {"signal": ("let_components/terms/",),
          "token_alignment": ("let_components/tokens/",),
          "stop_when": ("let_components/stop/",),
          "teacher_path": ("let_components/teacher/run_source.py",)}
"""A [let] key -> where it may be read: each decision has one owner, everyone else is handed its answer."""

PRESENCE = ("teaches", "needed_after")
"""The questions "does the teacher teach at this step?" and "can the run still need it?": answered by the stop rule
alone (let_components/stop/), whoever asks."""


def _unit(path: Path) -> str:
    """The layer unit of a module: its package under let_components, or the top-level module's name."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_units(path: Path) -> set[str]:
    """The let_components units a module imports (relative imports resolved; `from . import x` inside a package
    is the package itself)."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            else:
                target = (node.module or "").split(".")
            if target[:1] == ["let_components"]:
                names = target[1:] or [alias.name for alias in node.names]
                units.update(names[:1] if target[1:] else names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name.split(".")
                if target[0] == "let_components" and len(target) > 1:
                    units.add(target[1])
    return units


def test_every_module_has_a_layer():
    layered = set().union(*LAYERS)
    units = {_unit(path) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE}
    assert units == layered


def test_imports_point_only_downward():
    layer = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue
        unit = _unit(path)
        for imported in _imported_units(path) - {unit}:
            if layer[imported] >= layer[unit]:
                upward.append(f"{path.relative_to(REPO)} ({unit}, layer {layer[unit]}) imports {imported} "
                              f"(layer {layer[imported]})")
    assert not upward, "\n".join(upward)


def test_the_finder_sees_relative_and_absolute_imports():
    path = PACKAGE / "stop" / "caught_up.py"
    assert {"config", "record", "teacher", "tokens", "stop"} <= _imported_units(path)


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
              "signal.signal(1)\nd = job_config.let.teacher_path\n")
    assert _reads_of_let_keys(source) == [("signal", 1), ("token_alignment", 2), ("stop_when", 3),
                                          ("teacher_path", 5)]


@pytest.mark.parametrize("root", ["let_components", "recipes"])
def test_each_decision_is_read_by_its_owner_alone(root):
    stray = []
    for path in sorted((REPO / root).rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        for key, line in _reads_of_let_keys(path.read_text()):
            if not relative.startswith(OWNERS[key]):
                stray.append(f"{relative}:{line} reads let.{key}")
    assert not stray, "\n".join(stray)


def test_one_component_answers_whether_the_teacher_is_needed():
    """Only stop/ defines the presence questions; the rest of let_components asks them of the rule it was handed."""
    answers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in PRESENCE:
                answers.append(path.relative_to(PACKAGE).parts[0])
    assert set(answers) == {"stop"}
