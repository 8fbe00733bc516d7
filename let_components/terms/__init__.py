"""The teacher term: what the teacher teaches, chosen once at start-up by `let.signal`, as torchtitan builds its loss.

The trainer's step calls a term's methods in one fixed order and never asks which term it runs:

    hidden = teacher(tokens)                     the teacher's state (no grad)
    target = term.teach(teacher, hidden)         what it teaches: the state itself, or its logits
    with term.watching(): pred = student(...)    what the student forward must expose (a hook on block k)
    sums = term.sums(pred, target, valid)        [term SUM, metric SUMs] over the positions that count
    loss = term.combine(ce, sums[0] / N, weight) how the term joins the CE (term.weights: the two factors)

Every term is a SUM over the positions it counts, divided by the global count of them (N: the token map's
`normaliser`, for `same` torchtitan's global_valid_tokens), exactly as torchtitan scales its cross-entropy: each
rank's share is then already a fraction of the global mean, so summing gradients over data-parallel ranks and
micro-batches gives the global mean's gradient, and the term keeps its weight relative to the CE at any batch
layout.

Each implementation lives next to its math and its own checks: `AlignmentTerm` (LET, signal = "hidden") in
alignment.py and `DistillationTerm` (SALT/RKD, signal = "logits") in distillation.py. Nothing outside this package
reads let.signal (`term_option` does, once): a new signal is one module and one `register_term` line.
"""

from contextlib import AbstractContextManager
from typing import Protocol

import torch
from torch import nn
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims

from ..config import JobConfig
from ..registry import Registry
from ..teacher import TeacherModel, TeacherSource
from ..tokens import TokenAlignment


class TeacherTerm(Protocol):
    name: str
    """The term in metrics (`let/<name>`), on the [LET] line and in the guard's error line."""
    log_formats: dict[str, str]
    """Metric name -> format spec of the [LET] line, in the order printed."""
    token_split: tuple[str, ...]
    """The meshes (torchtitan's ParallelDims names) whose ranks hold different positions of this term's sums: its
    metrics are summed over them ("loss": data and context parallel; "tp": sequence shards)."""
    student_side: nn.Module | None
    """The module of the student whose output the term reads (block k, the output head): under pipeline parallelism
    the term joins the backward of the stage that holds it (pipeline.py), and only that stage's ranks need the
    teacher; None on a rank whose stages do not hold it."""

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

    def weights(self, weight: float) -> tuple[float, float]:
        """(the CE's factor, the term's factor) at weight lambda: the step's loss is their weighed sum (`combine`).
        A pair, not a function of the two: under pipeline parallelism the CE is weighed on the last stage and the
        term on block k's (pipeline.py)."""
        ...

    def combine(self, ce: torch.Tensor, term: torch.Tensor, weight: float) -> torch.Tensor:
        """The step's loss from the CE and the (normalised) term at weight lambda."""
        ce_factor, term_factor = self.weights(weight)
        return ce_factor * ce + term_factor * term

    def metrics(self, values: list[float]) -> dict[str, float]:
        """Metric name -> value, from the sums reduced over ranks and normalised."""
        ...


class TermOption(Protocol):
    """One value of let.signal: its checks before start and the term it builds once the student exists."""

    def check_config(self, job_config: JobConfig, alignment: TokenAlignment) -> None:
        """Before start, from the config and the run's token alignment: the keys this signal reads (a one-line error
        naming the key)."""
        ...

    def build(self, job_config: JobConfig, model_parts: list[nn.Module], tokenizer: BaseTokenizer, vocab_size: int,
              teacher: TeacherSource, parallel_dims: ParallelDims) -> TeacherTerm:
        """The run's term: the student's parts on this rank (one, or its pipeline stages here), its tokenizer and
        vocabulary, the teacher's source, the parallel layout."""
        ...


TERMS: Registry[TermOption] = Registry("let.signal", lambda job_config: job_config.let.signal)
"""`let.signal` -> its option; `term_option(job_config)` is the run's (the one reader of let.signal)."""
register_term, term_option = TERMS.register, TERMS.chosen


from .alignment import Alignment  # noqa: E402  (the terms import this module's protocol)
from .distillation import Distillation  # noqa: E402

register_term("hidden", Alignment())
register_term("logits", Distillation())
