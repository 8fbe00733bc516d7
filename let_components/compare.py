"""Compare LET runs with their baseline from torchtitan's TensorBoard events: the paper's speedup and final losses.

The paper reads its speedup off the validation curves: the steps the baseline needs to reach its own final
validation loss, divided by the steps a LET run needs to reach that same loss. Validation is evaluated every
`validation.freq` steps only, so a crossing is placed by linear interpolation between the evaluation before it
and the first evaluation at or below the target. Wall-clock uses torchtitan's per-step time, so the teacher's
forward passes (and its loading) count against LET.

The math (first_crossing, speedup, summarize, compare) takes plain lists so it is testable without files;
read_run turns a dump folder into a RunMetrics; markdown_table, to_json and plot render a Comparison.
"""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .student import TEACHER_CONFIG_COPY

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
    """The run's let.stop_step from its logged let/lambda (positive up to stop_step, 0 after); None if never > 0.

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
    mean = sum(present) / len(present)
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1)) if len(present) > 1 else 0.0
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
    total_seconds: float | None
    stop_step: int | None


METRICS = (
    "final_loss", "perplexity", "loss_delta", "steps_to_target", "tokens_to_target", "seconds_to_target",
    "speedup", "wall_clock_speedup",
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


def run_result(run: RunMetrics, target: Target) -> RunResult:
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
        total_seconds=_at(run.seconds, run.final_step),
        stop_step=run.stop_step,
    )


def compare(
    baseline: list[RunMetrics], lets: dict[str, list[RunMetrics]], baseline_name: str = "baseline"
) -> Comparison:
    """Every run against the baseline's final validation loss; the baseline's own seeds show the noise floor."""
    target = baseline_target(baseline)
    groups = [GroupResult(baseline_name, "baseline", [run_result(run, target) for run in baseline])]
    groups += [GroupResult(name, "let", [run_result(run, target) for run in runs]) for name, runs in lets.items()]
    return Comparison(target, groups)


# ---- reading dump folders ---------------------------------------------------------------------------------


def read_scalars(folder: Path, tags: tuple[str, ...]) -> dict[str, dict[int, float]]:
    """tag -> {step: value} over every event file under `folder`; a later file (a resumed run) wins per step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, dict[int, float]] = {tag: {} for tag in tags}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        present = accumulator.Tags()["scalars"]
        for tag in tags:
            if tag in present:
                values[tag].update({e.step: e.value for e in accumulator.Scalars(tag)})
    return values


def saved_job_config(folder: Path) -> dict[str, Any] | None:
    """The JobConfig torchtitan saved with `job.save_config_file`, if the run did."""
    for path in sorted(folder.glob("*.json")):
        if path.name == TEACHER_CONFIG_COPY:
            continue
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and "job" in config and "metrics" in config:
            return config
    return None


def read_run(path: str | Path, name: str | None = None) -> RunMetrics:
    folder = Path(path)
    scalars = read_scalars(folder, (VALIDATION_LOSS, TOKENS, STEP_TIME, LAMBDA))
    if not scalars[VALIDATION_LOSS]:
        raise ValueError(
            f"{folder}: no '{VALIDATION_LOSS}' in its TensorBoard events; the run needs [validation] enable = true "
            "and [metrics] enable_tensorboard = true"
        )
    config = saved_job_config(folder) or {}
    log_freq = config.get("metrics", {}).get("log_freq") or infer_log_freq(list(scalars[STEP_TIME]))
    let = config.get("let")
    stop_step = (let["stop_step"] if let.get("enable") else None) if let else stop_step_from_lambda(scalars[LAMBDA])
    tokens = sorted(scalars[TOKENS].items())
    return RunMetrics(
        name=name or folder.name,
        validation=sorted(scalars[VALIDATION_LOSS].items()),
        tokens=[(0.0, 0.0), *tokens] if tokens else [],
        seconds=cumulative_seconds(scalars[STEP_TIME], log_freq) if scalars[STEP_TIME] else [],
        stop_step=stop_step,
        path=str(folder),
    )


def parse_group(spec: str) -> tuple[str | None, list[str]]:
    """'NAME=PATH[,PATH...]' or 'PATH[,PATH...]' -> (NAME or None, paths); several paths are seeds."""
    name, _, paths = spec.partition("=") if "=" in spec else (None, "", spec)
    return name or None, [p for p in paths.split(",") if p]


def read_groups(specs: list[str]) -> dict[str, list[RunMetrics]]:
    """One group per spec, named NAME or after its first folder."""
    groups: dict[str, list[RunMetrics]] = {}
    for spec in specs:
        name, paths = parse_group(spec)
        name = name or Path(paths[0]).name
        if name in groups:
            raise ValueError(f"two runs are named {name!r}: give them names with NAME=PATH")
        groups[name] = [read_run(p, Path(p).name if len(paths) > 1 else name) for p in paths]
    return groups


# ---- rendering --------------------------------------------------------------------------------------------


def _number(value: float | None, kind: str, missing: str = "not reached") -> str:
    if value is None:
        return missing
    if kind == "tokens":
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.4g}{suffix}"
        return f"{value:.0f}"
    if kind == "seconds":
        if value < 600:
            return f"{value:.1f} s"
        return f"{value / 60:.1f} min" if value < 36000 else f"{value / 3600:.2f} h"
    formats = {"speedup": "{:.2f}x", "delta": "{:+.4f}", "steps": "{:.1f}", "perplexity": "{:.2f}"}
    return formats.get(kind, "{:.4f}").format(value)


def _cell(stat: Stat, kind: str, missing: str) -> str:
    if stat.mean is None:
        return missing
    text = _number(stat.mean, kind)
    if stat.n > 1:
        text += f" ± {_number(stat.std, kind).removeprefix('+')}"
    if stat.n < stat.of:
        text += f" ({stat.n}/{stat.of} reached)"
    return text


COLUMNS = (
    ("final val loss", "final_loss", "loss"),
    ("val ppl", "perplexity", "perplexity"),
    ("Δ loss vs baseline", "loss_delta", "delta"),
    ("steps to target", "steps_to_target", "steps"),
    ("tokens to target", "tokens_to_target", "tokens"),
    ("speedup (steps)", "speedup", "speedup"),
    ("wall-clock to target", "seconds_to_target", "seconds"),
    ("speedup (wall-clock)", "wall_clock_speedup", "speedup"),
)
LOGGED = ("tokens_to_target", "seconds_to_target", "wall_clock_speedup")
"""Metrics that also need n_tokens_seen or end_to_end(s) in the events: 'n/a' without them."""


def _missing(metric: str, reached: bool) -> str:
    return "n/a" if metric in LOGGED and reached else "not reached"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(comparison: Comparison) -> str:
    """One row per group (mean ± std over seeds), then the definitions; per-seed rows when there are seeds."""
    target = comparison.target
    header = ["run", "seeds", "alignment steps", *(title for title, _, _ in COLUMNS)]
    lines = [_row(header), _row(["---"] * len(header))]
    for group in comparison.groups:
        summary = group.summary()
        reached = summary["steps_to_target"].n > 0
        stops = sorted({run.stop_step for run in group.runs if run.stop_step})
        alignment = ", ".join(f"1..{s}" for s in stops) or "-"
        cells = [_cell(summary[metric], kind, _missing(metric, reached)) for _, metric, kind in COLUMNS]
        lines.append(_row([group.name, str(len(group.runs)), alignment, *cells]))
    reached_by = f"first reached by the baseline at step {target.steps:.1f}"
    if target.tokens is not None:
        reached_by += f", {_number(target.tokens, 'tokens')} tokens"
    if target.seconds is not None:
        reached_by += f", {_number(target.seconds, 'seconds')}"
    lines += [
        "",
        f"Target: the baseline's final validation loss {target.loss:.4f} (perplexity {math.exp(target.loss):.2f}), "
        f"{reached_by}.",
        f"Steps to target: {INTERPOLATION}; tokens and wall-clock are read at that step.",
        f"Speedup: {SPEEDUP}. Wall-clock: {WALL_CLOCK}.",
        "Several runs in one row are seeds: mean ± sample standard deviation.",
    ]
    if any(len(group.runs) > 1 for group in comparison.groups):
        lines += ["", _per_run_table(comparison)]
    return "\n".join(lines) + "\n"


def _per_run_table(comparison: Comparison) -> str:
    header = ["group", "run", *(title for title, _, _ in COLUMNS)]
    lines = [_row(header), _row(["---"] * len(header))]
    for group in comparison.groups:
        for run in group.runs:
            reached = run.steps_to_target is not None
            cells = [_number(getattr(run, metric), kind, _missing(metric, reached)) for _, metric, kind in COLUMNS]
            lines.append(_row([group.name, run.name, *cells]))
    return "\n".join(lines)


def to_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "target": asdict(comparison.target),
        "interpolation": INTERPOLATION,
        "speedup": SPEEDUP,
        "wall_clock": WALL_CLOCK,
        "groups": [
            {
                "name": group.name,
                "role": group.role,
                "summary": {metric: asdict(stat) for metric, stat in group.summary().items()},
                "runs": [asdict(run) for run in group.runs],
            }
            for group in comparison.groups
        ],
    }


def plot(comparison: Comparison, runs: dict[str, list[RunMetrics]], path: Path) -> Path:
    """Validation loss vs step and vs tokens; alignment phases shaded, the baseline's final loss as a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    by_step, by_tokens = figure.subplots(1, 2)
    colors = [f"C{i}" for i in range(10)]
    for index, (group, members) in enumerate(runs.items()):
        color = colors[index % len(colors)]
        for seed, run in enumerate(members):
            steps, losses = zip(*run.validation, strict=True)
            label = group if seed == 0 else None
            by_step.plot(steps, losses, marker="o", markersize=3, color=color, label=label)
            if run.tokens:
                by_tokens.plot([interpolate(run.tokens, s) for s in steps], losses, marker="o", markersize=3,
                               color=color, label=label)
        _shade_alignment(by_step, by_tokens, group, members, color)
    for axes, xlabel in ((by_step, "step"), (by_tokens, "tokens")):
        axes.axhline(comparison.target.loss, color="black", linestyle="--", linewidth=1,
                     label=f"baseline final val loss {comparison.target.loss:.4f}")
        axes.set_xlabel(xlabel)
        axes.set_ylabel("validation loss")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    by_step.set_title("validation loss vs step")
    by_tokens.set_title("validation loss vs tokens")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def _shade_alignment(by_step, by_tokens, group: str, members: list[RunMetrics], color: str) -> None:
    shaded = set()
    for run in members:
        if not run.stop_step or run.stop_step in shaded:
            continue
        shaded.add(run.stop_step)
        label = f"{group} alignment (steps 1..{run.stop_step})"
        by_step.axvspan(1, run.stop_step, color=color, alpha=0.12, label=label)
        if run.tokens:
            by_tokens.axvspan(interpolate(run.tokens, 1), interpolate(run.tokens, run.stop_step), color=color,
                              alpha=0.12, label=label)


def write_comparison(
    baseline_specs: list[str], let_specs: list[str], out: str | Path, with_plot: bool = True
) -> tuple[Comparison, str]:
    """Read the runs, compare, and write compare.md, compare.json and (with matplotlib) compare.png into `out`."""
    out = Path(out)
    named = [parse_group(spec) for spec in baseline_specs]
    baseline_name = next((name for name, _ in named if name), "baseline")
    baseline_paths = [p for _, paths in named for p in paths]
    baseline = [read_run(p, Path(p).name if len(baseline_paths) > 1 else baseline_name) for p in baseline_paths]
    lets = read_groups(let_specs)
    if baseline_name in lets:
        raise ValueError(f"a LET run is named {baseline_name!r} like the baseline: name it with NAME=PATH")
    comparison = compare(baseline, lets, baseline_name)
    table = markdown_table(comparison)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table)
    (out / "compare.json").write_text(json.dumps(to_json(comparison), indent=2) + "\n")
    if with_plot:
        plot(comparison, {baseline_name: baseline, **lets}, out / "compare.png")
    return comparison, table
