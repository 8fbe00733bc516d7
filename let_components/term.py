"""The teacher term: what the teacher teaches, chosen once at start-up by `let.signal`, as torchtitan builds its loss.

The trainer's step calls a term's methods in one fixed order and never asks which term it runs:

    hidden = teacher(tokens)                     the teacher's state (no grad)
    target = term.teach(teacher, hidden)         what it teaches: the state itself, or its logits
    with term.watching(): pred = student(...)    what the student forward must expose (a hook on block k)
    sums = term.sums(pred, target, valid)        [term SUM, metric SUMs] over the positions that count
    loss = term.combine(ce, sums[0] / N, weight) how the term joins the CE

Each implementation lives next to its math: `AlignmentTerm` (LET, signal = "hidden") in loss.py and
`DistillationTerm` (SALT/RKD, signal = "logits") in distill.py. A new signal is one class and one line in `TERMS`.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

import torch
from torch import nn
from torchtitan.components.tokenizer import BaseTokenizer

from .config import JobConfig
from .distill import DistillationTerm, check_distillation_vocab
from .loss import AlignmentTerm
from .teacher import TeacherModel, teacher_config


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


def _alignment(job_config: JobConfig, student: nn.Module, tokenizer: BaseTokenizer, vocab_size: int) -> TeacherTerm:
    return AlignmentTerm(job_config, student)


def _distillation(job_config: JobConfig, student: nn.Module, tokenizer: BaseTokenizer, vocab_size: int) -> TeacherTerm:
    let = job_config.let
    tokenizer_ids = max(tokenizer.get_vocab().values()) + 1
    teacher_vocab = teacher_config(let.teacher_path, job_config.job.dump_folder)["vocab_size"]
    check_distillation_vocab(vocab_size, teacher_vocab, tokenizer_ids)
    return DistillationTerm(job_config, tokenizer_ids)


TERMS: dict[str, Callable[[JobConfig, nn.Module, BaseTokenizer, int], TeacherTerm]] = {
    "hidden": _alignment,
    "logits": _distillation,
}
"""`let.signal` -> the builder of its teacher term."""


def build_teacher_term(
    job_config: JobConfig, student: nn.Module, tokenizer: BaseTokenizer, vocab_size: int
) -> TeacherTerm:
    """The run's teacher term, from `let.signal` (checked against `TERMS` before start)."""
    return TERMS[job_config.let.signal](job_config, student, tokenizer, vocab_size)
