"""let.stop_when = "step" (the paper's rule): the schedule's weight on steps 1..stop_step, then 0."""

from typing import Any

import torch
from torchtitan.distributed import ParallelDims

from ..config import LET, JobConfig
from ..schedule import teacher_weight
from ..teacher.lm import TeacherLM


class FixedStop:
    """The teacher teaches on steps 1..let.stop_step with the `let.schedule` weight (none at lambda_0 = 0)."""

    def __init__(self, let: LET):
        self.lambda_0, self.stop_step, self.schedule = let.lambda_0, let.stop_step, let.schedule

    @property
    def last_step(self) -> int:
        return self.stop_step if self.lambda_0 > 0 else 0

    def weight(self, step: int) -> float:
        return teacher_weight(step, self.lambda_0, self.stop_step, self.schedule) if self.teaches(step) else 0.0

    def teaches(self, step: int) -> bool:
        return step <= self.last_step

    def needed_after(self, step: int) -> bool:
        return step < self.last_step

    def observe(self, step: int, pred: torch.Tensor, labels: torch.Tensor, teacher: TeacherLM,
                label_bytes: torch.Tensor | None = None) -> None:
        pass

    def end_step(self, step: int, parallel_dims: ParallelDims) -> dict[str, float]:
        return {}

    def describe(self) -> str:
        return f"lambda_0={self.lambda_0} ({self.schedule}) for steps 1..{self.stop_step}"

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


class FixedStopOption:
    def check_config(self, job_config: JobConfig) -> None:
        pass

    def build(self, job_config: JobConfig, inputs: Any) -> FixedStop:
        return FixedStop(job_config.let)
