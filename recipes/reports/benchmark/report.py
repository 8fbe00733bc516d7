"""The benchmark's report: benchmark.json, its Markdown table and the combined summary of several checks."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .measure import CONFIGS, PHASES


def write_report(
    report: dict[str, Any], out: str | Path, name: str = "benchmark",
    to_markdown: Callable[[dict[str, Any]], str] | None = None,
) -> str:
    """<name>.json + <name>.md in `out`; returns the Markdown. to_markdown: the report's table (default: the
    side-by-side benchmark's, format_markdown; paired.py passes its own)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2))
    markdown = (to_markdown or format_markdown)(report)
    (out / f"{name}.md").write_text(markdown)
    return markdown


# ---- Markdown ----------------------------------------------------------------------------------------------


def _with_range(s: dict[str, Any], fmt: str) -> str:
    if len(s["values"]) == 1:
        return format(s["mean"], fmt)
    return f"{format(s['mean'], fmt)} ({format(s['min'], fmt)}..{format(s['max'], fmt)})"


def _comparison(c: dict[str, Any], fmt: str) -> str:
    if len(c["per_repeat"]) == 1:
        return format(c["value"], fmt)
    return f"{format(c['value'], fmt)} ({format(c['min'], fmt)}..{format(c['max'], fmt)})"


def _step_range(steps: list[int]) -> str:
    if not steps:
        return "none"
    return f"{steps[0]}-{steps[-1]}" if len(steps) > 1 else str(steps[0])


def _env_prefix(meta: dict[str, Any]) -> str:
    return "".join(f"{key}={value} " for key, value in meta.get("env", {}).items())


def format_markdown(report: dict[str, Any]) -> str:
    meta, spec, measured = report["meta"], report["spec"], report["measured_steps"]
    lines = [
        f"### LET vs baseline throughput{': ' + report['label'] if report['label'] else ''}",
        "",
        f"- device: {meta['device']}; torch {meta['torch']}; torchtitan {meta['torchtitan']}; {meta['date']}",
        f"- command: `{_env_prefix(meta)}{meta['command']}`" if meta["command"] else "- command: (library call)",
        f"- baseline `{spec['baseline_config']}`, LET `{spec['let_config']}`"
        + (f", both with `{' '.join(spec['extra_args'])}`" if spec["extra_args"] else ""),
        f"- {spec['steps']} steps per run, LET stop_step {spec['stop_step']}; warm-up step(s) "
        f"{_step_range(list(range(1, spec['warmup'] + 1)))} and step {spec['stop_step'] + 1} (teacher freed) are not "
        f"measured; {spec['repeats']} repeat(s), baseline and LET alternating",
        "- per run: median over its measured steps (peak memory: max); shown: mean (min..max) over repeats",
        f"- 1-min load average {meta['load_average_1min']:.2f} before, {meta['load_average_1min_after']:.2f} after",
        "",
        "| config | phase (steps) | tokens/s | step ms | MFU % | peak reserved GiB | peak active GiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for config in CONFIGS:
        for phase in PHASES:
            r = report["results"][config][phase]
            lines.append(
                f"| {'LET' if config == 'let' else config} | {phase} ({_step_range(measured[phase])}) "
                f"| {_with_range(r['tokens_per_s'], ',.0f')} | {_with_range(r['step_ms'], '.1f')} "
                f"| {_with_range(r['mfu_pct'], '.2f')} | {_with_range(r['peak_memory_gib'], '.2f')} "
                f"| {_with_range(r['peak_active_gib'], '.2f')} |"
            )
    lines += ["", "| LET / baseline | aligning | after |", "|---|---:|---:|"]
    comparison = report["comparison"]
    for key, name, fmt in (
        ("tokens_per_s_ratio", "tokens/s ratio", ".3f"),
        ("step_ms_ratio", "step time ratio", ".3f"),
        ("peak_memory_delta_gib", "peak reserved memory delta GiB", "+.2f"),
        ("peak_active_delta_gib", "peak active memory delta GiB", "+.2f"),
    ):
        lines.append(f"| {name} | {_comparison(comparison['aligning'][key], fmt)} "
                     f"| {_comparison(comparison['after'][key], fmt)} |")
    teacher = report["teacher"]
    lines.append("")
    if teacher:
        lines.append(
            f"Teacher forward alone: {teacher['ms_per_step']:.2f} ms/step (batch {teacher['local_batch_size']} x "
            f"{teacher['seq_len']}, {teacher['dtype']}, {'compiled' if teacher['compiled'] else 'eager'}, "
            f"{teacher['device']}; median of {teacher['iters']} after {teacher['warmup']} warm-up) = "
            f"{100 * teacher['share_of_let_aligning_step']:.2f}% of a LET aligning step."
        )
    lines.append(f"Memory: {meta['memory_metric']}." + (f" {meta['mfu_note']}." if meta["mfu_note"] else ""))
    return "\n".join(lines) + "\n"


def format_summary(reports: list[dict[str, Any]]) -> str:
    """One table over several benchmark reports (one row per check), for recipes/studies/gpu_checks.sh and the docs."""
    lines = [
        "| check | baseline tokens/s | LET tokens/s aligning | LET/baseline aligning | LET/baseline after "
        "| baseline MFU % | peak GiB baseline / LET | teacher ms/step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for report in reports:
        base, let, comparison = report["results"]["baseline"], report["results"]["let"], report["comparison"]
        teacher = report["teacher"]
        lines.append(
            f"| {report['label'] or report['spec']['let_config']} "
            f"| {_with_range(base['aligning']['tokens_per_s'], ',.0f')} "
            f"| {_with_range(let['aligning']['tokens_per_s'], ',.0f')} "
            f"| {_comparison(comparison['aligning']['tokens_per_s_ratio'], '.3f')} "
            f"| {_comparison(comparison['after']['tokens_per_s_ratio'], '.3f')} "
            f"| {base['aligning']['mfu_pct']['mean']:.1f} "
            f"| {base['aligning']['peak_memory_gib']['mean']:.2f} / {let['aligning']['peak_memory_gib']['mean']:.2f} "
            f"| {format(teacher['ms_per_step'], '.2f') if teacher else '-'} |"
        )
    first = reports[0]["meta"] if reports else {}
    header = (
        f"device: {first.get('device', '?')}; torch {first.get('torch', '?')}; "
        f"torchtitan {first.get('torchtitan', '?')}; {first.get('date', '?')}\n\n"
    )
    return header + "\n".join(lines) + "\n"




LOSS_TAG = "loss_metrics/global_avg_loss"


def loss_difference(run_a: str | Path, run_b: str | Path, steps: int = 20) -> str:
    """The largest |loss_a - loss_b| over the first `steps` steps both runs logged: same config and seed, so any
    difference is numerics (bf16, kernel choice, CUDA graphs), not data."""
    from ..run_logs import read_scalars

    a, b = (read_scalars(run, (LOSS_TAG,))[LOSS_TAG] for run in (run_a, run_b))
    common = sorted(set(a) & set(b))[:steps]
    if not common:
        raise ValueError(f"{run_a} and {run_b} share no logged '{LOSS_TAG}' step")
    worst = max(common, key=lambda s: abs(a[s] - b[s]))
    return (
        f"largest |loss difference| over steps {common[0]}..{common[-1]}: {abs(a[worst] - b[worst]):.2e} "
        f"(step {worst}: {a[worst]:.5f} vs {b[worst]:.5f})"
    )
