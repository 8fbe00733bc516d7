"""Compare LET runs with their baseline from torchtitan's TensorBoard events: the paper's speedup and final losses.

The paper reads its speedup off the validation curves: the steps the baseline needs to reach its own final
validation loss, divided by the steps a LET run needs to reach that same loss. Validation is evaluated every
`validation.freq` steps only, so a crossing is placed by linear interpolation between the evaluation before it
and the first evaluation at or below the target. Wall-clock uses torchtitan's per-step time, so the teacher's
forward passes (and its loading) count against LET.

The math (first_crossing, speedup, summarize, compare_runs) takes plain lists so it is testable without files;
runs.read_run turns a dump folder into a RunMetrics; report.py renders a Comparison (table, JSON, plot).
"""

import math
from dataclasses import dataclass, field

from ..run_logs import mean_and_std

VALIDATION_LOSS = "validation_metrics/loss"
TOKENS = "n_tokens_seen"
STEP_TIME = "time_metrics/end_to_end(s)"
LAMBDA = "let/lambda"

INTERPOLATION = (
    "first validation evaluation at or below the target, linearly interpolated between it and the evaluation "
    "before it"
)
SPEEDUP = "baseline steps to reach its own final validation loss / run steps to reach that loss"
WALL_CLOCK = (
    "cumulative time_metrics/end_to_end(s) x metrics.log_freq (training steps incl. the teacher; validation "
    "excluded), read at the crossing step"
)

Points = list[tuple[float, float]]
"""(x, y) pairs sorted by x: (step, loss), (step, tokens) or (step, seconds)."""


@dataclass
class RunMetrics:
    """What the comparison needs from one run; read_run builds it from a dump folder, tests build it by hand."""

    name: str
    validation: Points
    """(step, validation loss) at every evaluation."""
    tokens: Points = field(default_factory=list)
    """(step, tokens seen), starting at (0, 0); empty when n_tokens_seen was not logged."""
    seconds: Points = field(default_factory=list)
    """(step, wall-clock seconds since start), starting at (0, 0); empty when timing was not logged."""
    stop_step: int | None = None
    """Last alignment step of a LET run; None for a baseline."""
    path: str = ""

    @property
    def final_step(self) -> float:
        return self.validation[-1][0]

    @property
    def final_loss(self) -> float:
        return self.validation[-1][1]


# ---- the math ---------------------------------------------------------------------------------------------


def first_crossing(curve: Points, target: float) -> float | None:
    """First x where the loss curve reaches `target` (loss <= target); None if it never does.

    Between evaluations the curve is taken as linear, so a crossing between steps 50 (above) and 100 (at or
    below) lands where the straight line between them meets the target. A curve that starts at or below the
    target crosses at its first evaluation.
    """
    previous: tuple[float, float] | None = None
    for x, loss in curve:
        if loss <= target:
            if previous is None:
                return x
            x0, loss0 = previous
            return x0 + (loss0 - target) / (loss0 - loss) * (x - x0)
        previous = (x, loss)
    return None


def interpolate(points: Points, x: float) -> float | None:
    """Piecewise-linear y(x) through `points`, extended along the last segment; None without two points.

    Maps a (fractional) step to tokens or seconds: those are logged every metrics.log_freq steps only, while
    crossings fall between validation evaluations.
    """
    if len(points) < 2:
        return None
    end = next((i for i in range(1, len(points)) if x <= points[i][0]), len(points) - 1)
    (x0, y0), (x1, y1) = points[end - 1], points[end]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def cumulative_seconds(step_times: dict[int, float], log_freq: int) -> Points:
    """(step, seconds since start) from torchtitan's time_metrics/end_to_end(s).

    torchtitan logs each interval's wall time divided by metrics.log_freq, the first interval (step 1 plus
    start-up, e.g. loading the teacher) included, so multiplying back by log_freq recovers every interval.
    """
    points, total = [(0.0, 0.0)], 0.0
    for step in sorted(step_times):
        total += step_times[step] * log_freq
        points.append((float(step), total))
    return points


def infer_log_freq(logged_steps: list[int]) -> int:
    """metrics.log_freq from the steps torchtitan logged (step 1 and every multiple of log_freq)."""
    return math.gcd(*[s for s in logged_steps if s > 1]) or 1


def stop_step_from_lambda(lambdas: dict[int, float]) -> int | None:
    """For runs made before the trainer recorded let_run.json: let.stop_step from their logged let/lambda
    (positive up to stop_step, 0 after); None if never > 0.

    lambda is logged every log_freq steps, so stop_step lies between the last positive and the first zero log.
    The linear and cosine schedules pin it exactly from lambda(1) and the last positive value; when that is
    ambiguous (constant schedule, or both schedules fit) the last logged positive step is returned.
    """
    positive = sorted(s for s, value in lambdas.items() if value > 0)
    if not positive:
        return None
    last = positive[-1]
    zeros = [s for s, value in lambdas.items() if value == 0 and s > last]
    highest = min(zeros) - 1 if zeros else math.inf
    if last == highest or 1 not in lambdas or last == 1:
        return last
    lambda_0, ratio = lambdas[1], lambdas[last] / lambdas[1]
    fractions = {"linear": 1.0 - ratio, "cosine": math.acos(max(-1.0, min(1.0, 2 * ratio - 1))) / math.pi}
    shapes = {"linear": lambda p: 1.0 - p, "cosine": lambda p: (1.0 + math.cos(math.pi * p)) / 2.0}
    candidates = set()
    for schedule, fraction in fractions.items():
        if fraction <= 0:
            continue
        stop = round((last - 1) / fraction)
        fits = all(
            abs(lambdas[s] - lambda_0 * shapes[schedule]((s - 1) / stop)) <= 1e-5 * lambda_0 for s in positive
        )
        if fits and last <= stop <= highest:
            candidates.add(stop)
    return candidates.pop() if len(candidates) == 1 else last


def speedup(baseline: float | None, run: float | None) -> float | None:
    """baseline / run for steps (or seconds) to the same loss; None when either never got there."""
    if baseline is None or run is None or run <= 0:
        return None
    return baseline / run


@dataclass
class Stat:
    """Mean and sample standard deviation over the seeds that have a value (`n` of `of`)."""

    mean: float | None
    std: float | None
    n: int
    of: int


def summarize(values: list[float | None]) -> Stat:
    present = [v for v in values if v is not None]
    if not present:
        return Stat(None, None, 0, len(values))
    mean, std = mean_and_std(present)
    return Stat(mean, std, len(present), len(values))


def mean_curve(curves: list[Points]) -> Points:
    """Average loss over seeds at the steps every seed evaluated."""
    common = set.intersection(*(set(x for x, _ in curve) for curve in curves))
    if not common:
        raise ValueError("the baseline seeds share no validation step: use the same validation.freq and steps")
    by_step = [dict(curve) for curve in curves]
    return [(x, sum(c[x] for c in by_step) / len(by_step)) for x in sorted(common)]


# ---- the comparison ---------------------------------------------------------------------------------------


@dataclass
class Target:
    """The baseline's final validation loss and what the baseline needed to reach it first."""

    loss: float
    """Final validation loss of the baseline (mean curve over seeds)."""
    steps: float
    """First crossing of `loss` on the baseline's mean curve (the final step unless the curve went back up)."""
    tokens: float | None
    seconds: float | None
    """Mean over baseline seeds of their wall-clock at `steps`."""


@dataclass
class RunResult:
    name: str
    path: str
    final_step: float
    final_loss: float
    perplexity: float
    loss_delta: float
    """final_loss - target loss (negative: better than the baseline)."""
    steps_to_target: float | None
    tokens_to_target: float | None
    seconds_to_target: float | None
    speedup: float | None
    wall_clock_speedup: float | None
    paired_delta: float | None
    """final_loss - the final loss of the baseline run with the same seed (position); None without one."""
    total_seconds: float | None
    """Wall-clock of the whole run's training steps (the teacher included, validation excluded), as WALL_CLOCK."""
    stop_step: int | None


METRICS = (
    "final_loss", "perplexity", "loss_delta", "steps_to_target", "tokens_to_target", "seconds_to_target",
    "speedup", "wall_clock_speedup", "total_seconds", "paired_delta",
)


@dataclass
class GroupResult:
    """One baseline or LET configuration; several runs are seeds."""

    name: str
    role: str
    runs: list[RunResult]

    def summary(self) -> dict[str, Stat]:
        return {metric: summarize([getattr(run, metric) for run in self.runs]) for metric in METRICS}


@dataclass
class Comparison:
    target: Target
    groups: list[GroupResult]


def _at(points: Points, step: float | None) -> float | None:
    return interpolate(points, step) if step is not None else None


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values) / len(values)


def baseline_target(baseline: list[RunMetrics]) -> Target:
    curve = mean_curve([run.validation for run in baseline])
    loss = curve[-1][1]
    steps = first_crossing(curve, loss)
    return Target(
        loss=loss,
        steps=steps,
        tokens=_mean_or_none([_at(run.tokens, steps) for run in baseline]),
        seconds=_mean_or_none([_at(run.seconds, steps) for run in baseline]),
    )


def run_result(run: RunMetrics, target: Target, paired: RunMetrics | None = None) -> RunResult:
    steps = first_crossing(run.validation, target.loss)
    seconds = _at(run.seconds, steps)
    return RunResult(
        name=run.name,
        path=run.path,
        final_step=run.final_step,
        final_loss=run.final_loss,
        perplexity=math.exp(run.final_loss),
        loss_delta=run.final_loss - target.loss,
        steps_to_target=steps,
        tokens_to_target=_at(run.tokens, steps),
        seconds_to_target=seconds,
        speedup=speedup(target.steps, steps),
        wall_clock_speedup=speedup(target.seconds, seconds),
        paired_delta=run.final_loss - paired.final_loss if paired is not None else None,
        total_seconds=_at(run.seconds, run.final_step),
        stop_step=run.stop_step,
    )


def paired_baseline(runs: list[RunMetrics], baseline: list[RunMetrics]) -> list[RunMetrics] | None:
    """The baseline run each run is paired with (same position: the same seed), or None when there are more runs."""
    return baseline[: len(runs)] if len(runs) <= len(baseline) else None


def compare_runs(
    baseline: list[RunMetrics], others: dict[str, list[RunMetrics]], baseline_name: str = "baseline"
) -> Comparison:
    """Every run against the baseline's final validation loss; the baseline's own seeds show the noise floor.

    A group with at most as many runs as the baseline is also paired with it run by run (the i-th run with the i-th
    baseline: give them in the same seed order, the seeds a short group lacks last), which removes the init seed's
    share of the spread; a one-seed screening run is then read against its own seed's baseline, not the mean.
    """
    target = baseline_target(baseline)
    groups = [GroupResult(baseline_name, "baseline", [run_result(run, target) for run in baseline])]
    for name, runs in others.items():
        pairs = paired_baseline(runs, baseline) or [None] * len(runs)
        groups.append(GroupResult(name, "let", [run_result(r, target, b) for r, b in zip(runs, pairs, strict=True)]))
    return Comparison(target, groups)


