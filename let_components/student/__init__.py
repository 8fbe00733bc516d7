"""LET students: torchtitan model families with the late-to-early alignment seams (spec.py).

Each is a TrainSpec selected in TOML by `[model] name` and `flavor`; `register()` adds all of them.
Another family is one module like qwen3.py: mixins on torchtitan's classes, a flavors dict, `student_train_spec`.
"""

from collections.abc import Callable

from torchtitan.protocols.train_spec import TrainSpec, register_train_spec

from . import deepseek_v3, llama, qwen3
from .llama import SPEC_NAME, Student, StudentArgs, StudentStateDictAdapter, ffn_hidden_dim, student_args

STUDENT_SPECS: dict[str, Callable[[], TrainSpec]] = {
    llama.SPEC_NAME: llama.get_train_spec,
    qwen3.SPEC_NAME: qwen3.get_train_spec,
    deepseek_v3.SPEC_NAME: deepseek_v3.get_train_spec,
}
"""`[model] name` -> TrainSpec builder of every LET student."""


def register() -> None:
    """Register the student TrainSpecs once each (torchtitan raises on a duplicate name)."""
    from torchtitan.protocols.train_spec import _extra_train_specs

    for name, build in STUDENT_SPECS.items():
        if name not in _extra_train_specs:
            register_train_spec(name, build())


__all__ = [
    "SPEC_NAME",
    "STUDENT_SPECS",
    "Student",
    "StudentArgs",
    "StudentStateDictAdapter",
    "ffn_hidden_dim",
    "register",
    "student_args",
]
