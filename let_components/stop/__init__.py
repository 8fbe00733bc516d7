"""When the teacher leaves (`let.stop_when`): the rule that gives each step the teacher term's weight, chosen once
at start-up. fixed.py: the paper's stop_step; caught_up.py: also as soon as the student has caught up with the
teacher per byte of text. Nothing outside this package reads let.stop_when: a new rule is one module and one
`register_stop_rule` line.

The rule is also the one owner of the teacher's presence: every question "is the teacher still needed?" - the
pre-start checks (after the step a run resumes from), the trainer's build, the resume (after the checkpoint's state
is loaded) and each step - is `rule.teaches(step)` or `rule.needed_after(step)`, both read off `rule.last_step`.
"""

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims

from ..config import JobConfig
from ..record import RunRecord
from ..registry import Registry
from ..teacher.lm import TeacherLM
from ..teacher.source import TeacherSource


class StopRule(Protocol):
    last_step: int
    """The last step the teacher teaches on (it may move earlier when the rule decides): the teacher's presence."""

    def weight(self, step: int) -> float:
        """lambda at 1-based `step`; 0 on every step the teacher does not teach."""
        ...

    def teaches(self, step: int) -> bool:
        """Whether the teacher teaches at 1-based `step`: load it (once), run it, add its term."""
        ...

    def needed_after(self, step: int) -> bool:
        """Whether a run that has finished `step` (a resume point) can still need the teacher."""
        ...

    def observe(self, step: int, pred: torch.Tensor, labels: torch.Tensor, teacher: TeacherLM,
                label_bytes: torch.Tensor | None = None) -> None:
        """Each teaching micro-batch, before backward: what the rule measures (`label_bytes`: the bytes of each
        student label where the data pipeline read them off the text, TokenMap.student_label_bytes)."""
        ...

    def end_step(self, step: int, parallel_dims: ParallelDims) -> dict[str, float]:
        """After each teaching step: the metrics it logs (empty when it measured nothing)."""
        ...

    def describe(self) -> str:
        ...

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ...


@dataclass(frozen=True)
class StopInputs:
    """What a rule is handed at start-up (it fetches nothing itself)."""

    resume_step: int
    """The step the run resumes after (0: a fresh start)."""
    record: RunRecord
    """The run record: where a rule's decision is kept for later starts and tools."""
    student_tokenizer: BaseTokenizer
    student_key: str
    """The config key the student's tokenizer came from (for error lines)."""
    teacher: TeacherSource


class StopOption(Protocol):
    """One value of let.stop_when."""

    def check_config(self, job_config: JobConfig) -> None:
        """Before start, from the config alone: the rule's own keys."""
        ...

    def build(self, job_config: JobConfig, inputs: StopInputs) -> StopRule:
        """The run's rule, at start-up (a decision recorded by an earlier start of this run included)."""
        ...


STOP_RULES: Registry[StopOption] = Registry("let.stop_when", lambda job_config: job_config.let.stop_when)
"""let.stop_when -> its option; `stop_option(job_config)` is the run's (the one reader of let.stop_when)."""
register_stop_rule, stop_option = STOP_RULES.register, STOP_RULES.chosen


from .caught_up import CaughtUp, CaughtUpOption  # noqa: E402
from .fixed import FixedStop, FixedStopOption  # noqa: E402

register_stop_rule("step", FixedStopOption())
register_stop_rule("caught_up", CaughtUpOption())

__all__ = ["STOP_RULES", "CaughtUp", "FixedStop", "StopInputs", "StopOption", "StopRule", "register_stop_rule",
           "stop_option"]
