"""One registry shape (let_components/registry.py) for every choice by name: a name is taken once - another object
under it is refused in one line, the same object again is harmless - and an unknown name is the one-line
configuration error naming the key and what is registered."""

import pytest

from let_components.config import LETConfigError
from let_components.registry import Registry
from let_components.stop import STOP_RULES, register_stop_rule
from let_components.teacher import TEACHER_ARCHITECTURES, register_teacher
from let_components.terms import TERMS, register_term
from let_components.tokens import TOKEN_ALIGNMENTS, register_token_alignment
from let_components.tokens.same import Same


def _refused_in_one_line(register, *args, key: str, name: str) -> None:
    with pytest.raises(ValueError) as error:
        register(*args)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{key}={name!r} is already registered (to ")


def test_another_term_under_a_taken_signal_is_refused_and_the_same_one_is_harmless():
    _refused_in_one_line(register_term, "hidden", object(), key="let.signal", name="hidden")
    register_term("hidden", TERMS["hidden"])
    assert list(TERMS) == ["hidden", "logits"]


def test_another_token_alignment_under_a_taken_name_is_refused_and_the_same_one_is_harmless():
    _refused_in_one_line(register_token_alignment, Same(), key="let.token_alignment", name="same")
    register_token_alignment(TOKEN_ALIGNMENTS["same"])
    assert list(TOKEN_ALIGNMENTS) == ["same", "bytes"]


def test_another_stop_rule_under_a_taken_name_is_refused_and_the_same_one_is_harmless():
    _refused_in_one_line(register_stop_rule, "caught_up", object(), key="let.stop_when", name="caught_up")
    register_stop_rule("caught_up", STOP_RULES["caught_up"])
    assert list(STOP_RULES) == ["step", "caught_up"]


def test_another_teacher_architecture_under_a_taken_model_type_is_refused_and_the_same_one_is_harmless():
    _refused_in_one_line(register_teacher, "llama", TEACHER_ARCHITECTURES["qwen3"], key="teacher model_type",
                         name="llama")
    register_teacher("llama", TEACHER_ARCHITECTURES["llama"])
    assert "llama" in TEACHER_ARCHITECTURES


def test_an_unknown_name_is_one_line_naming_the_key_and_the_registered_ones():
    registry: Registry[int] = Registry("let.example")
    registry.register("a", 1)
    registry.register("b", 2)
    with pytest.raises(LETConfigError, match=r"^let.example='c': valid are a, b$"):
        registry["c"]
