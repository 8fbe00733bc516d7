"""let.stop_when = "step" (the paper's rule): the schedule's weight on steps 1..stop_step, then 0."""

from typing import Any

import torch
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims

from ..config import LET, JobConfig
from ..schedule import teacher_weight
from ..teacher.lm import TeacherLM


class FixedStop:
    """The teacher teaches on steps 1..let.stop_step with the `let.schedule` weight."""

    def __init__(self, let: LET):
        self.lambda_0, self.stop_step, self.schedule = let.lambda_0, let.stop_step, let.schedule

    def weight(self, step: int) -> float:
        return teacher_weight(step, self.lambda_0, self.stop_step, self.schedule)

    def teacher_needed(self, resume_step: int) -> bool:
        return resume_step < self.stop_step

    @classmethod
    def needed_after(cls, job_config: JobConfig, resume_step: int) -> bool:
        """teacher_needed without building the rule (the checks before start)."""
        return resume_step < job_config.let.stop_step

    @classmethod
    def check_config(cls, job_config: JobConfig) -> None:
        pass

    @classmethod
    def check_tokenizers(cls, job_config: JobConfig) -> None:
        pass

    @classmethod
    def build(cls, job_config: JobConfig, resume_step: int, tokenizer: BaseTokenizer) -> "FixedStop":
        return cls(job_config.let)

    def observe(self, step: int, pred: torch.Tensor, labels: torch.Tensor, teacher: TeacherLM) -> None:
        pass

    def end_step(self, step: int, parallel_dims: ParallelDims) -> dict[str, float]:
        return {}

    def describe(self) -> str:
        return f"lambda_0={self.lambda_0} ({self.schedule}) for steps 1..{self.stop_step}"

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass
