"""The teacher term's weight lambda as a pure function of torchtitan's 1-based step, so resumption is exact."""

import math
from typing import Literal, get_args

Schedule = Literal["linear", "constant", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)


def teacher_weight(step: int, lambda_0: float, stop_step: int, schedule: Schedule = "linear") -> float:
    """lambda at 1-based `step`; 0 for every step > stop_step, so the teacher teaches exactly stop_step steps.

    linear:   lambda_0 * (S - (step - 1)) / S   (lambda(1) = lambda_0, the paper's decay)
    constant: lambda_0
    cosine:   lambda_0 * (1 + cos(pi * (step - 1) / S)) / 2
    """
    if step > stop_step or stop_step <= 0:
        return 0.0
    progress = (step - 1) / stop_step
    if schedule == "linear":
        return lambda_0 * (1.0 - progress)
    if schedule == "constant":
        return lambda_0
    if schedule == "cosine":
        return lambda_0 * (1.0 + math.cos(math.pi * progress)) / 2.0
    raise ValueError(f"let.schedule={schedule!r}: valid are {', '.join(SCHEDULES)}")
