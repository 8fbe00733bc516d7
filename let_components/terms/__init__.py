"""The teacher term: what the teacher teaches, chosen once at start-up by `let.signal`, as torchtitan builds its loss.

The trainer's step calls a term's methods in one fixed order and never asks which term it runs:

    hidden = teacher(tokens)                     the teacher's state (no grad)
    target = term.teach(teacher, hidden)         what it teaches: the state itself, or its logits
    with term.watching(): pred = student(...)    what the student forward must expose (a hook on block k)
    sums = term.sums(pred, target, valid)        [term SUM, metric SUMs] over the positions that count
    loss = term.combine(ce, sums[0] / N, weight) how the term joins the CE

Each implementation lives next to its math and its own checks: `AlignmentTerm` (LET, signal = "hidden") in
alignment.py and `DistillationTerm` (SALT/RKD, signal = "logits") in distillation.py. Nothing outside this package
reads let.signal: a new signal is one module and one `register_term` line (its name is also the guard's word for it).
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torchtitan.components.tokenizer import BaseTokenizer

from ..config import JobConfig, registered
from ..teacher import TeacherModel


class TeacherTerm(Protocol):
    name: str
    """The term in metrics (`let/<name>`), on the [LET] line and in the guard's error line."""
    log_formats: dict[str, str]
    """Metric name -> format spec of the [LET] line, in the order printed."""

    def describe(self, job_config: JobConfig) -> str:
        """What the term does, for the start-up line."""
        ...

    def teach(self, teacher: TeacherModel, hidden: torch.Tensor) -> torch.Tensor:
        """The teacher's target from its state (called under no_grad)."""
        ...

    def lm_logits(self, teacher: TeacherModel, target: torch.Tensor) -> torch.Tensor:
        """The teacher's next-token logits for its LM loss, from its target (reused when the target is logits)."""
        ...

    def watching(self) -> AbstractContextManager[None]:
        """Around the student forward: what the term needs to see of it besides its logits."""
        ...

    def sums(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[term SUM, metric SUMs...] over the valid positions (the trainer divides them by the global count)."""
        ...

    def combine(self, ce: torch.Tensor, term: torch.Tensor, weight: float) -> torch.Tensor:
        """The step's loss from the CE and the (normalised) term at weight lambda."""
        ...

    def metrics(self, values: list[float]) -> dict[str, float]:
        """Metric name -> value, from the sums reduced over ranks and normalised."""
        ...


TermBuilder = Callable[[JobConfig, nn.Module, BaseTokenizer, int], TeacherTerm]
"""(job_config, student, student tokenizer, student vocab size) -> the run's term."""


@dataclass(frozen=True)
class TermOption:
    build: TermBuilder
    check: Callable[[JobConfig], None] = lambda job_config: None
    """Before start, from the config alone: the keys this signal reads (a one-line error naming the key)."""


TERMS: dict[str, TermOption] = {}
"""`let.signal` -> its term."""


def register_term(signal: str, build: TermBuilder, check: Callable[[JobConfig], None] | None = None) -> None:
    TERMS[signal] = TermOption(build, check) if check else TermOption(build)


def term_option(job_config: JobConfig) -> TermOption:
    return registered(TERMS, "signal", job_config.let.signal)


def check_term_config(job_config: JobConfig) -> None:
    """Before start: let.signal is registered, and its own keys are valid."""
    term_option(job_config).check(job_config)


def build_teacher_term(
    job_config: JobConfig, student: nn.Module, tokenizer: BaseTokenizer, vocab_size: int
) -> TeacherTerm:
    """The run's teacher term, from `let.signal`."""
    return term_option(job_config).build(job_config, student, tokenizer, vocab_size)


from .alignment import build_alignment  # noqa: E402  (the terms import this module's protocol)
from .distillation import build_distillation, check_logits_signal  # noqa: E402

register_term("hidden", build_alignment)
register_term("logits", build_distillation, check_logits_signal)
