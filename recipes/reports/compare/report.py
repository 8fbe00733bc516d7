"""Rendering a comparison: the Markdown table, the JSON and the plot (loss curves, difference to the baseline)."""

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..run_logs import mean_and_std
from .analysis import (
    INTERPOLATION,
    SPEEDUP,
    WALL_CLOCK,
    Comparison,
    RunMetrics,
    Stat,
    compare_runs,
    mean_curve,
    paired_baseline,
)
from .runs import parse_group, read_groups, read_run


def _number(value: float | None, kind: str, missing: str = "not reached") -> str:
    if value is None:
        return missing
    if kind == "tokens":
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.4g}{suffix}"
        return f"{value:.0f}"
    if kind == "seconds":
        return _seconds(value, value)
    formats = {"speedup": "{:.2f}x", "delta": "{:+.4f}", "steps": "{:.1f}", "perplexity": "{:.2f}"}
    return formats.get(kind, "{:.4f}").format(value)


def _seconds(value: float, scale: float) -> str:
    """value in the unit that suits scale, so a spread reads in its mean's unit: '20.7 min ± 2.5 min'."""
    if scale < 600:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min" if scale < 36000 else f"{value / 3600:.2f} h"


def _cell(stat: Stat, kind: str, missing: str) -> str:
    if stat.mean is None:
        return missing
    text = _number(stat.mean, kind)
    if stat.n > 1:
        spread = _seconds(stat.std, stat.mean) if kind == "seconds" else _number(stat.std, kind)
        text += f" ± {spread.removeprefix('+')}"
    if stat.n < stat.of:
        text += f" ({stat.n}/{stat.of} reached)"
    return text


COLUMNS = (
    ("final val loss", "final_loss", "loss"),
    ("val ppl", "perplexity", "perplexity"),
    ("Δ loss vs baseline", "loss_delta", "delta"),
    ("paired Δ (same seed)", "paired_delta", "delta"),
    ("steps to target", "steps_to_target", "steps"),
    ("tokens to target", "tokens_to_target", "tokens"),
    ("speedup (steps)", "speedup", "speedup"),
    ("wall-clock to target", "seconds_to_target", "seconds"),
    ("speedup (wall-clock)", "wall_clock_speedup", "speedup"),
    ("wall-clock per run", "total_seconds", "seconds"),
)
LOGGED = ("tokens_to_target", "seconds_to_target", "wall_clock_speedup", "total_seconds")
"""Metrics that also need n_tokens_seen or end_to_end(s) in the events: 'n/a' without them."""


def _missing(metric: str, reached: bool) -> str:
    """What an empty cell says: why its value is absent."""
    if metric == "paired_delta":
        return "-"  # the row has no same-seed baseline run
    if metric == "total_seconds":
        return "n/a"  # needs end_to_end(s), whether or not the run reached the target
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
        f"Speedup: {SPEEDUP}. Wall-clock: {WALL_CLOCK}; per run: the same sum to the last step.",
        "Several runs in one row are seeds: mean ± sample standard deviation. Paired Δ: final loss minus that of the "
        "baseline run given in the same position (the same seed), where a row has at most as many runs as the "
        "baseline.",
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


def difference_curve(
    runs: list[RunMetrics], baseline: list[RunMetrics], paired: bool = False
) -> list[tuple[float, float, float]]:
    """(step, mean, std) over seeds of run loss - baseline loss, at the evaluations every run shares: against the
    same-seed baseline run when paired (as the table's paired Δ), else against the baseline's mean curve."""
    pairs = paired_baseline(runs, baseline) if paired else None
    if pairs is not None:
        references = [dict(run.validation) for run in pairs]
    else:
        references = [dict(mean_curve([run.validation for run in baseline]))] * len(runs)
    per_run = [dict(run.validation) for run in runs]
    steps = sorted(set(references[0]).intersection(*references[1:], *per_run))
    matched = list(zip(per_run, references, strict=True))
    return [(step, *mean_and_std([curve[step] - reference[step] for curve, reference in matched])) for step in steps]


def teaching_phases(runs: dict[str, list[RunMetrics]]) -> dict[str, int]:
    """Each group's last teaching step (the longest over its seeds); groups without a teacher are left out."""
    phases = {group: max((run.stop_step or 0) for run in members) for group, members in runs.items()}
    return {group: stop for group, stop in phases.items() if stop}


def plot(comparison: Comparison, runs: dict[str, list[RunMetrics]], path: Path) -> Path:
    """Left: validation loss (mean over seeds) per group. Right: its difference to the baseline per evaluation,
    paired by seed where the table pairs it, mean +- seed std; the baseline's own seeds give the noise band. The
    shortest teaching phase is shaded; a longer one (RKD's) ends at a dotted line in its group's colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    curves, differences = figure.subplots(1, 2)
    baseline_name = comparison.groups[0].name
    baseline = runs[baseline_name]
    colors = {group: "black" if group == baseline_name else f"C{index % 10}" for index, group in enumerate(runs)}
    for group, members in runs.items():
        color = colors[group]
        mean = mean_curve([run.validation for run in members])
        curves.plot(*zip(*mean, strict=True), marker="o", markersize=3, color=color,
                    label=f"{group} ({len(members)} seed{'s' if len(members) > 1 else ''})")
        diff = difference_curve(members, baseline, paired=group != baseline_name)
        steps, values, stds = zip(*diff, strict=True)
        if group == baseline_name:
            if len(members) > 1:
                differences.fill_between(steps, [-s for s in stds], stds, color="gray", alpha=0.25,
                                         label="baseline seeds: ± std (noise)")
            continue
        differences.plot(steps, values, marker="o", markersize=3, color=color, label=group)
        if len(members) > 1:
            differences.fill_between(steps, [v - s for v, s in zip(values, stds, strict=True)],
                                     [v + s for v, s in zip(values, stds, strict=True)], color=color, alpha=0.2)
    phases = teaching_phases(runs)
    shortest = min(phases.values(), default=0)
    for axes in (curves, differences):
        if phases:
            axes.axvspan(1, shortest, color="gold", alpha=0.15, label=f"teaching phase (steps 1..{shortest})")
        for group, stop in phases.items():
            if stop > shortest:
                axes.axvline(stop, color=colors[group], linestyle=":", label=f"{group}: teacher to step {stop}")
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    curves.axhline(comparison.target.loss, color="black", linestyle="--", linewidth=1,
                   label=f"baseline final val loss {comparison.target.loss:.4f}")
    differences.axhline(0.0, color="black", linewidth=1)
    curves.set_ylabel("validation loss")
    differences.set_ylabel("validation loss - same-seed baseline (mean over seeds)")
    curves.set_title("validation loss vs step")
    differences.set_title("difference to the baseline (below 0: better)")
    curves.legend(fontsize=8)
    differences.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def write_comparison(
    baseline_specs: list[str], let_specs: list[str], out: str | Path, with_plot: bool = True
) -> tuple[Comparison, str]:
    """Read the runs, compare, and write compare.md, compare.json and (with matplotlib) compare.png into `out`."""
    out = Path(out)
    named = [parse_group(spec) for spec in baseline_specs]
    baseline_name = next((name for name, _ in named if name), "baseline")
    baseline_paths = [p for _, paths in named for p in paths]
    baseline = [read_run(p, Path(p).name if len(baseline_paths) > 1 else baseline_name) for p in baseline_paths]
    others = read_groups(let_specs)
    if baseline_name in others:
        raise ValueError(f"a LET run is named {baseline_name!r} like the baseline: name it with NAME=PATH")
    comparison = compare_runs(baseline, others, baseline_name)
    table = markdown_table(comparison)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table)
    (out / "compare.json").write_text(json.dumps(to_json(comparison), indent=2) + "\n")
    if with_plot:
        plot(comparison, {baseline_name: baseline, **others}, out / "compare.png")
    return comparison, table
