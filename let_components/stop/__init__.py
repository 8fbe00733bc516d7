"""When the teacher leaves (`let.stop_when`): the rule that gives each step the teacher term's weight, chosen once
at start-up. fixed.py: the paper's stop_step; caught_up.py: also as soon as the student has caught up with the
teacher per byte of text. Nothing outside this package reads let.stop_when: a new rule is one module and one
`register_stop_rule` line.
"""

from typing import Any, Protocol

import torch
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims

from ..config import JobConfig, registered
from ..teacher.lm import TeacherLM


class StopRule(Protocol):
    def weight(self, step: int) -> float:
        """lambda at 1-based `step`; 0 from the step after the teacher has left."""
        ...

    def teacher_needed(self, resume_step: int) -> bool:
        """Whether a run resumed after `resume_step` can still need the teacher."""
        ...

    def observe(self, step: int, pred: torch.Tensor, labels: torch.Tensor, teacher: TeacherLM) -> None:
        """Each teaching micro-batch, before backward: what the rule measures."""
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


STOP_RULES: dict[str, Any] = {}
"""let.stop_when -> its rule class: `needed_after(job_config, resume_step)`, `check_config(job_config)`,
`check_tokenizers(job_config)` and `build(job_config, resume_step, tokenizer)`, all class methods."""


def register_stop_rule(name: str, rule: Any) -> None:
    STOP_RULES[name] = rule


def _rule(job_config: JobConfig) -> Any:
    return registered(STOP_RULES, "stop_when", job_config.let.stop_when)


def check_stop_config(job_config: JobConfig) -> None:
    """Before start, from the config alone."""
    _rule(job_config).check_config(job_config)


def check_stop_tokenizers(job_config: JobConfig) -> None:
    """Before start, after the teacher folder's checks: what the rule measures with."""
    _rule(job_config).check_tokenizers(job_config)


def teacher_needed(job_config: JobConfig, resume_step: int) -> bool:
    """Whether a run resumed after `resume_step` can still need the teacher, without building the rule."""
    return _rule(job_config).needed_after(job_config, resume_step)


def build_stop_rule(job_config: JobConfig, resume_step: int, tokenizer: BaseTokenizer) -> StopRule:
    """The run's stop rule; `tokenizer` is the student's (a rule may measure per byte in it)."""
    return _rule(job_config).build(job_config, resume_step, tokenizer)


from .caught_up import CaughtUp  # noqa: E402
from .fixed import FixedStop  # noqa: E402

register_stop_rule("step", FixedStop)
register_stop_rule("caught_up", CaughtUp)
