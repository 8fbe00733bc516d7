"""LET against plain steps inside one process: the paired measurement and the breakdown of a teaching step.

Side by side (measure.py), LET and baseline are separate processes; the spread between processes (compile, memory
layout, the machine's state) is as large as the effects being decided. Here one LET process with its teacher
loaded runs arms (arms.py; the trainer: paired_trainer.py) in blocks of steps, in palindromic rounds, each block's
first step unclocked (paired_stats.py says why): every arm meets the same machine, data stream and compiled code,
and each round gives one difference. `--paired` runs plain and LET's step; `--breakdown` adds LET's pieces one by
one (teacher forward, token mapping, term, guard, stop-rule check), so each piece is the difference of two arms -
the term's backward cannot be isolated by profiler ranges.

What the paired arms cannot see (the side-by-side mode can): memory (the teacher stays resident in every arm),
the steps after stop_step (the teacher is never released), the teacher's load and one-off sanity check (in the
warm-up round), and work LET adds outside the step: with token_alignment = "bytes" the dataset's teacher side
(teacher ids and index per window) runs for both arms.
"""

import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .arms import ARMS, BREAKDOWN, PART_NAMES, PLAN_ENV, Plan
from .launch import run_training
from .paired_stats import (
    TARGET_HALF_WIDTH,
    Interval,
    compare,
    lead_in_extra_ms,
    palindrome_blocks,
    parts,
    round_times,
    t_quantile,
)
from .report import write_report

# no validation, checkpoint, logging or garbage collection inside the measured steps (step 1 logs; it is warm-up)
PAIRED_ARGS = ("--validation.no-enable", "--checkpoint.no-enable", "--metrics.log_freq", "1000000",
               "--training.gc_freq", "1000000")


@dataclass
class PairedSpec:
    let_config: str
    arms: list[str]
    """Arm names (arms.ARMS), the first is the reference every other is compared with."""
    rounds: int = 10
    """Measured rounds; each runs every arm twice, in palindromic order."""
    block_steps: int = 4
    """Steps per block (at least 4: the device is synchronised only at a block's ends and after its first step,
    which is not clocked; arms.Plan.lead_in_steps)."""
    warmup_rounds: int = 1
    """Rounds left out first (compilation, the teacher's load and sanity check, allocator warm-up)."""
    confidence: float = 0.95
    out: str = "outputs/benchmark_paired"
    extra_args: list[str] = field(default_factory=list)
    ngpu: int | None = 1
    """1: one process on one device, no launcher (measure.run_training); more: run_train.sh with NGPU."""
    label: str = ""
    command: str = ""


def check_spec(spec: PairedSpec) -> None:
    unknown = [arm for arm in spec.arms if arm not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}: valid are {', '.join(ARMS)}")
    if len(spec.arms) < 2 or spec.block_steps < 4 or spec.rounds < 2 or spec.warmup_rounds < 0:
        raise ValueError(f"arms={spec.arms}, block_steps={spec.block_steps}, rounds={spec.rounds}, warmup_rounds="
                         f"{spec.warmup_rounds}: need 2+ arms, blocks of 4+ steps, 2+ rounds, warmup_rounds >= 0")


def run_paired(spec: PairedSpec) -> dict[str, Any]:
    """One training process running the spec's arms; the report is a JSON-ready dict."""
    check_spec(spec)
    run = Path(spec.out).resolve() / "run"
    run.mkdir(parents=True, exist_ok=True)
    plan = Plan(spec.arms, palindrome_blocks(len(spec.arms), spec.warmup_rounds + spec.rounds), spec.block_steps,
                str(run / "blocks.json"))
    (run / "plan.json").write_text(json.dumps(asdict(plan)))
    Path(plan.out).unlink(missing_ok=True)
    steps = str(plan.steps)
    args = ["--job.config_file", str(Path(spec.let_config).resolve()), "--job.dump_folder", str(run),
            *spec.extra_args, *PAIRED_ARGS, "--training.steps", steps, "--let.stop_step", steps]
    env = {"TRAIN_FILE": "recipes.reports.benchmark.paired_trainer", PLAN_ENV: str(run / "plan.json")}
    load_before = os.getloadavg()[0]
    wall_s = run_training(args, run / "train.log", spec.ngpu, env)
    record = json.loads(Path(plan.out).read_text())
    meta = {**record["meta"], "command": spec.command, "load_average_1min": load_before,
            "load_average_1min_after": os.getloadavg()[0], "wall_s": wall_s}
    blocks = record["blocks"]
    report = {"label": spec.label, "meta": meta, "spec": asdict(spec), "tokens_per_step": record["tokens_per_step"],
              "blocks": blocks, **analyse(blocks, spec.arms, spec.warmup_rounds, spec.confidence)}
    if "no accelerator" in meta["device"]:
        # a shared CPU: the process's CPU time (one thread) is the work; the wall time includes the neighbours
        report["cpu_time"] = analyse(blocks, spec.arms, spec.warmup_rounds, spec.confidence, clock="cpu_seconds")
    return report


def analyse(
    blocks: list[dict], arms: list[str], warmup_rounds: int, confidence: float = 0.95, clock: str = "seconds"
) -> dict[str, Any]:
    """Per-arm times, every arm against the first, and (for the breakdown) each arm minus the one before; what
    the blocks' unclocked first steps took beyond a clocked step (the switching cost left out)."""
    times = round_times(blocks, arms, warmup_rounds, clock)
    comparisons = [compare(times, i, 0, confidence) for i in range(1, len(arms))]
    analysis: dict[str, Any] = {
        "ms_per_step": {t.name: 1000 * statistics.fmean(t.per_round) for t in times},
        "per_round_s": {t.name: t.per_round for t in times},
        "comparisons": [asdict(c) for c in comparisons],
        "lead_in_extra_ms": lead_in_extra_ms(blocks, arms, warmup_rounds, clock),
    }
    if arms == BREAKDOWN:
        analysis["parts"] = [{"arm": name, "part": PART_NAMES[name], **asdict(interval)}
                             for name, interval in parts(times, confidence)]
    return analysis


def ratio_change(before: dict[str, Any], after: dict[str, Any], confidence: float = 0.95) -> Interval:
    """The last arm's tokens/s ratio of the `after` report over the `before` report's (two processes, e.g. the
    CUDA-graph teacher against the default one): exp of the difference of the mean log ratios, with a Welch t
    interval from each run's per-round spread."""
    a, b = (report["comparisons"][-1]["tokens_per_s_ratio"] for report in (before, after))
    va, vb = a["sd"] ** 2 / a["n"], b["sd"] ** 2 / b["n"]
    difference = math.log(b["mean"]) - math.log(a["mean"])
    if va + vb == 0:
        return Interval(math.exp(difference), math.exp(difference), math.exp(difference), 0.0, a["n"] + b["n"])
    df = (va + vb) ** 2 / (va**2 / (a["n"] - 1) + vb**2 / (b["n"] - 1))
    half = t_quantile(0.5 + confidence / 2, max(1, math.floor(df))) * math.sqrt(va + vb)
    return Interval(math.exp(difference), math.exp(difference - half), math.exp(difference + half),
                    math.sqrt(va + vb), a["n"] + b["n"])


def format_ratio_change(before_out: str | Path, after_out: str | Path) -> str:
    before, after = (json.loads((Path(out) / "paired.json").read_text()) for out in (before_out, after_out))
    change = ratio_change(before, after)
    name = lambda report: report["label"] or report["spec"]["let_config"]  # noqa: E731
    ratio = lambda report: report["comparisons"][-1]["tokens_per_s_ratio"]  # noqa: E731
    return (f"{name(after)} against {name(before)}: LET/plain tokens/s {ratio(after)['mean']:.4f} vs "
            f"{ratio(before)['mean']:.4f}, a change of x{change.mean:.4f} ({change.low:.4f}..{change.high:.4f}, 95%)")


# ---- Markdown ----------------------------------------------------------------------------------------------


def _interval(i: dict[str, float], fmt: str) -> str:
    return f"{format(i['mean'], fmt)} ({format(i['low'], fmt)}..{format(i['high'], fmt)})"


def _lead_in(blocks: list[dict]) -> str:
    lead_in = blocks[0].get("lead_in_steps", 0) if blocks else 0
    if not lead_in:
        return ", every step clocked"
    return f", each block's first {'step' if lead_in == 1 else f'{lead_in} steps'} not clocked (switching arms)"


def format_paired(report: dict[str, Any]) -> str:
    meta, spec = report["meta"], report["spec"]
    arms, confidence = spec["arms"], spec["confidence"]
    rounds = len(report["per_round_s"][arms[0]])
    lines = [
        f"### Paired in one process{': ' + report['label'] if report['label'] else ''}",
        "",
        f"- device: {meta['device']}; torch {meta['torch']}; torchtitan {meta['torchtitan']}; {meta['date']}",
        f"- command: `{meta['command']}`" if meta["command"] else "- command: (library call)",
        f"- `{spec['let_config']}`" + (f" with `{' '.join(spec['extra_args'])}`" if spec["extra_args"] else ""),
        f"- arms {', '.join(arms)}: {rounds} measured round(s) after {spec['warmup_rounds']} warm-up, each arm "
        f"twice per round in palindromic order, blocks of {spec['block_steps']} steps synchronised at both ends"
        f"{_lead_in(report['blocks'])}; "
        f"{report['tokens_per_step']:,} tokens per step; {100 * confidence:g}% t intervals over rounds",
        f"- 1-min load average {meta['load_average_1min']:.2f} before, {meta['load_average_1min_after']:.2f} after; "
        f"{meta['wall_s']:.0f} s wall",
        "",
        *(["By wall time:", ""] if "cpu_time" in report else []),
        *_tables(report, arms, report["tokens_per_step"]),
    ]
    if "cpu_time" in report:
        lines += ["", "By the process's CPU time (one thread: the work itself; the wall time above also measures "
                  "whatever else the machine ran):", "", *_tables(report["cpu_time"], arms, report["tokens_per_step"])]
    return "\n".join(lines) + "\n"


def _tables(analysis: dict[str, Any], arms: list[str], tokens_per_step: int) -> list[str]:
    """Every arm against the first; for the breakdown, the parts against LET - plain."""
    reference = next(iter(analysis["ms_per_step"]))
    lines = [
        f"| arm | ms/step | tokens/s | tokens/s vs {arms[0]} | extra ms/step "
        f"| rounds for +-{100 * TARGET_HALF_WIDTH:g}% |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {reference} | {analysis['ms_per_step'][reference]:.2f} "
        f"| {1000 * tokens_per_step / analysis['ms_per_step'][reference]:,.0f} | 1 | 0 | |",
    ]
    for c in analysis["comparisons"]:
        lines.append(
            f"| {c['name']} | {c['ms_per_step']:.2f} | {1000 * tokens_per_step / c['ms_per_step']:,.0f} "
            f"| {_interval(c['tokens_per_s_ratio'], '.4f')} | {_interval(c['extra_ms'], '+.2f')} "
            f"| {c['rounds_for_target']} ({c['rounds_for_target'] * 2 * len(arms)} blocks) |"
        )
    if "parts" in analysis:
        total = analysis["comparisons"][-1]["extra_ms"]["mean"]
        named = sum(p["mean"] for p in analysis["parts"] if p["arm"] != "skeleton")
        lines += ["", "| part (arm minus the arm before) | ms/step | share of LET - plain |", "|---|---:|---:|"]
        for p in analysis["parts"]:
            share = f"{100 * p['mean'] / total:.0f}%" if total else "-"
            lines.append(f"| {p['part']} (`{p['arm']}`) | {_interval(p, '+.2f')} | {share} |")
        lines.append(f"| **named parts (all but the bookkeeping)** | {named:+.2f} | "
                     f"{f'{100 * named / total:.0f}%' if total else '-'} |")
        lines.append(f"| **LET - plain (this run)** | {_interval(analysis['comparisons'][-1]['extra_ms'], '+.2f')} "
                     "| 100% |")
    if analysis.get("lead_in_extra_ms"):
        lines += ["", "Unclocked first step of a block (switching arms), ms beyond a clocked step: " + ", ".join(
            f"{name} {extra:+.2f}" for name, extra in analysis["lead_in_extra_ms"].items())]
    return lines


def write_paired(report: dict[str, Any], out: str | Path) -> str:
    """paired.json + paired.md in `out`; returns the Markdown."""
    return write_report(report, out, "paired", format_paired)
