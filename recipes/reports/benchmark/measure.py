"""Throughput of LET against its baseline: both configs run alternately on one machine, phase by phase.

A LET run costs extra only while it aligns (steps <= stop_step: teacher forward + alignment term every step);
after stop_step the teacher is freed and the step is torchtitan's own. One LET run with stop_step in the middle
measures both phases, and the baseline is cut into the same two step ranges, so every ratio compares the same
steps. Runs alternate (baseline, LET, baseline, LET, ...) so slow drifts of the machine (other jobs, clocks)
hit both configs alike; the spread over repeats shows how much of a difference is noise.

Each run is a subprocess of run_train.sh logging every step to TensorBoard; numbers are read back from its
events (full precision), not from the console.
"""

import importlib.metadata
import os
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from let_components import platform

from ...common import parse_job_config
from ..run_logs import mean_and_std, read_scalars
from .launch import run_training

CONFIGS = ("baseline", "let")
PHASES = ("aligning", "after")
# every step logged, to TensorBoard; nothing else (validation, checkpoints) inside the timed steps
MEASURE_ARGS = (
    "--metrics.log_freq", "1", "--metrics.enable_tensorboard", "--validation.no-enable", "--checkpoint.no-enable",
)
# metric -> torchtitan's TensorBoard tag
TAGS = {
    "tokens_per_s": "throughput(tps)",
    "step_ms": "time_metrics/end_to_end(s)",
    "mfu_pct": "mfu(%)",
    "peak_memory_gib": "memory/max_reserved(GiB)",
    "peak_active_gib": "memory/max_active(GiB)",
}
# per-step peaks: a run's figure is their max, not their median
MEMORY_METRICS = ("peak_memory_gib", "peak_active_gib")
# environment that changes what is measured: thread count, device choice
RECORDED_ENV = ("OMP_NUM_THREADS", "NGPU", "CUDA_VISIBLE_DEVICES")


@dataclass
class BenchmarkSpec:
    baseline_config: str
    let_config: str
    steps: int = 30
    """Training steps per run."""
    stop_step: int = 15
    """let.stop_step of the LET runs: steps 1..stop_step align, the rest run without the teacher."""
    warmup: int = 3
    """First steps of every run left out (compile, allocator and data-loader warm-up)."""
    repeats: int = 3
    """Baseline/LET pairs, run alternately."""
    out: str = "outputs/benchmark"
    extra_args: list[str] = field(default_factory=list)
    """Passed to both configs' runs (e.g. --training.seq_len 128)."""
    ngpu: int | None = None
    """NGPU for run_train.sh; None lets it count the machine's accelerators; 1 runs one process, no launcher."""
    let_first: bool = False
    """Each repeat runs LET before the baseline (when the LET run is the one that must not be skipped)."""
    teacher_timing: bool = True
    """Also time the teacher forward alone in this process."""
    label: str = ""
    """Name of this comparison in combined summaries (recipes/studies/gpu_checks.sh)."""
    command: str = ""
    """The command line that started the benchmark, recorded in the report."""


# ---- which steps count -------------------------------------------------------------------------------------


def phase_steps(steps: int, stop_step: int, warmup: int) -> dict[str, list[int]]:
    """Measured steps per phase: warm-up steps and step stop_step + 1 (where LET frees the teacher) are dropped.

    The same steps are used for baseline and LET runs, so a ratio never compares different parts of a run.
    """
    measured = {
        "aligning": list(range(warmup + 1, stop_step + 1)),
        "after": list(range(max(warmup, stop_step + 1) + 1, steps + 1)),
    }
    for phase, selected in measured.items():
        if not selected:
            raise ValueError(
                f"steps={steps}, stop_step={stop_step}, warmup={warmup}: no measured step left in phase '{phase}'; "
                "need warmup < stop_step <= steps - 2"
            )
    return measured


# ---- aggregation (pure) ------------------------------------------------------------------------------------


@dataclass
class Spread:
    """A number measured once per repeat: its mean, range and sample standard deviation."""

    mean: float
    min: float
    max: float
    std: float
    values: list[float]


def spread(values: list[float]) -> Spread:
    mean, std = mean_and_std(values)
    return Spread(mean, min(values), max(values), std, list(values))


def run_phase_metrics(scalars: dict[str, dict[int, float]], steps: list[int]) -> dict[str, float]:
    """One run's number per metric over `steps`: the median step (robust to one slow step), peak memory the max.

    `scalars` maps metric name (keys of TAGS) -> step -> value as logged (step time in seconds).
    """
    missing = [(metric, s) for metric in TAGS for s in steps if s not in scalars.get(metric, {})]
    if missing:
        steps_missing, metrics_missing = sorted({s for _, s in missing}), sorted({m for m, _ in missing})
        raise ValueError(f"steps {steps_missing} were not logged for {metrics_missing}")
    metrics = {
        metric: (max if metric in MEMORY_METRICS else statistics.median)(scalars[metric][s] for s in steps)
        for metric in TAGS
    }
    metrics["step_ms"] *= 1000.0
    return metrics


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Spread]]]:
    """config -> phase -> metric -> Spread over repeats, from the per-run numbers (in repeat order)."""
    results: dict[str, dict[str, dict[str, Spread]]] = {}
    for config in CONFIGS:
        repeats = sorted((r for r in runs if r["config"] == config), key=lambda r: r["repeat"])
        results[config] = {
            phase: {metric: spread([r["phases"][phase][metric] for r in repeats]) for metric in TAGS}
            for phase in PHASES
        }
    return results


@dataclass
class Ratio:
    """LET against baseline for one metric: `value` from the means, `per_repeat` from each alternating pair."""

    value: float
    per_repeat: list[float]
    min: float
    max: float


def ratio(let: Spread, baseline: Spread) -> Ratio:
    per_repeat = [a / b for a, b in zip(let.values, baseline.values, strict=True)]
    return Ratio(let.mean / baseline.mean, per_repeat, min(per_repeat), max(per_repeat))


def delta(let: Spread, baseline: Spread) -> Ratio:
    per_repeat = [a - b for a, b in zip(let.values, baseline.values, strict=True)]
    return Ratio(let.mean - baseline.mean, per_repeat, min(per_repeat), max(per_repeat))


def let_vs_baseline(results: dict[str, dict[str, dict[str, Spread]]]) -> dict[str, dict[str, Ratio]]:
    """phase -> tokens/s and step-time ratios, peak reserved and active memory deltas (GiB), LET vs baseline."""
    let, baseline = results["let"], results["baseline"]
    return {
        phase: {
            "tokens_per_s_ratio": ratio(let[phase]["tokens_per_s"], baseline[phase]["tokens_per_s"]),
            "step_ms_ratio": ratio(let[phase]["step_ms"], baseline[phase]["step_ms"]),
            "peak_memory_delta_gib": delta(let[phase]["peak_memory_gib"], baseline[phase]["peak_memory_gib"]),
            "peak_active_delta_gib": delta(let[phase]["peak_active_gib"], baseline[phase]["peak_active_gib"]),
        }
        for phase in PHASES
    }


# ---- running torchtitan ------------------------------------------------------------------------------------


def train_args(spec: BenchmarkSpec, config: str, dump_folder: Path) -> list[str]:
    """run_train.sh arguments of one run; the measurement flags come last so extra args cannot undo them."""
    config_file = Path(spec.let_config if config == "let" else spec.baseline_config).resolve()
    args = ["--job.config_file", str(config_file), "--job.dump_folder", str(dump_folder), *spec.extra_args]
    args += [*MEASURE_ARGS, "--training.steps", str(spec.steps)]
    if config == "let":
        args += ["--let.stop_step", str(spec.stop_step)]
    return args


def measure_run(spec: BenchmarkSpec, config: str, repeat: int, measured: dict[str, list[int]]) -> dict[str, Any]:
    # absolute: run_train.sh runs in the repository root, this process may not
    dump_folder = Path(spec.out).resolve() / "runs" / f"{config}_{repeat}"
    shutil.rmtree(dump_folder, ignore_errors=True)  # stale events of an earlier benchmark would mix in
    dump_folder.mkdir(parents=True)
    log_file = dump_folder / "train.log"
    wall_s = run_training(train_args(spec, config, dump_folder), log_file, spec.ngpu)
    if config == "let" and "teacher released" not in log_file.read_text():
        raise RuntimeError(f"{log_file}: the LET run never released its teacher; is [let] enable = true?")
    by_tag = read_scalars(dump_folder, tuple(TAGS.values()))
    scalars = {metric: by_tag[tag] for metric, tag in TAGS.items()}
    phases = {phase: run_phase_metrics(scalars, steps) for phase, steps in measured.items()}
    run = {"config": config, "repeat": repeat, "dump_folder": str(dump_folder), "wall_s": wall_s, "phases": phases}
    print(
        f"[benchmark] {config} run {repeat}/{spec.repeats}: {wall_s:.0f} s wall; tokens/s "
        + ", ".join(f"{phase} {phases[phase]['tokens_per_s']:,.0f}" for phase in PHASES),
        flush=True,
    )
    return run


# ---- the teacher forward alone -----------------------------------------------------------------------------


@dataclass
class TeacherTiming:
    ms_per_step: float
    """Median forward time of one local batch, in milliseconds."""
    local_batch_size: int
    seq_len: int
    dtype: str
    compiled: bool
    device: str
    iters: int
    warmup: int


def time_teacher(job_config, iters: int = 20, warmup: int = 3) -> TeacherTiming:
    """Median time of the teacher forward on one local batch, with the trainer's dtype and compile policy.

    The teacher is built by the trainer's own `build_teacher` (dtype and compile policy). GPU time is read with CUDA
    events (the host returns before the kernels finish); CPU time with perf_counter.
    """
    from let_components.teacher import TeacherOptions, build_teacher, teacher_compiled, teacher_source
    from let_components.tokens import token_alignment

    training = job_config.training
    device = torch.device("cpu") if platform.on_cpu() else torch.accelerator.current_accelerator()
    options = TeacherOptions(layer=job_config.let.teacher_layer,
                             max_seq_len=token_alignment(job_config).teacher_seq_len(job_config))
    forward = build_teacher(job_config, teacher_source(job_config), options, device)
    teacher = getattr(forward, "_orig_mod", forward)
    dtype = next(teacher.parameters()).dtype
    tokens = torch.randint(0, teacher.vocab_size, (training.local_batch_size, training.seq_len), device=device)
    times_ms = []
    with torch.no_grad():
        for i in range(warmup + iters):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                forward(tokens)
                end.record()
                torch.cuda.synchronize()
                elapsed_ms = start.elapsed_time(end)
            else:
                begin = time.perf_counter()
                forward(tokens)
                elapsed_ms = 1000 * (time.perf_counter() - begin)
            if i >= warmup:
                times_ms.append(elapsed_ms)
    del forward, teacher
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return TeacherTiming(
        statistics.median(times_ms), training.local_batch_size, training.seq_len, str(dtype).removeprefix("torch."),
        teacher_compiled(job_config), device.type, iters, warmup,
    )


# ---- the whole benchmark -----------------------------------------------------------------------------------


def device_name() -> str:
    if not platform.on_cpu() and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
    model = "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, no accelerator"


def run_metadata(command: str) -> dict[str, Any]:
    on_cpu = platform.on_cpu()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device_name(),
        "torch": torch.__version__,
        "torchtitan": importlib.metadata.version("torchtitan"),
        "command": command,
        "env": {key: os.environ[key] for key in RECORDED_ENV if key in os.environ},
        "load_average_1min": os.getloadavg()[0],
        "memory_metric": (
            "process peak RSS in both memory columns (torchtitan's memory metric on CPU; it never resets, so 'after' "
            "includes the aligning peak)"
            if on_cpu else "torch.cuda peak reserved (held by the caching allocator, so it keeps blocks cached by "
            "earlier steps) and peak active (allocated tensors) memory, reset at every logged step"
        ),
        "mfu_note": "MFU on CPU is against torchtitan's A100 fallback peak and means nothing" if on_cpu else "",
    }


def run_benchmark(spec: BenchmarkSpec) -> dict[str, Any]:
    """Alternate baseline and LET runs, then aggregate; the report is a JSON-ready dict."""
    if spec.repeats < 1 or spec.warmup < 0:
        raise ValueError(f"repeats={spec.repeats}, warmup={spec.warmup}: need repeats >= 1 and warmup >= 0")
    measured = phase_steps(spec.steps, spec.stop_step, spec.warmup)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()[0]
    runs = [
        measure_run(spec, config, repeat, measured) for repeat in range(1, spec.repeats + 1)
        for config in (reversed(CONFIGS) if spec.let_first else CONFIGS)
    ]
    # only now: asking CUDA for the device name would hold a CUDA context beside every training run
    meta = {**run_metadata(spec.command), "date": started, "load_average_1min": load_before}
    meta["load_average_1min_after"] = os.getloadavg()[0]
    results = aggregate(runs)
    report: dict[str, Any] = {
        "label": spec.label,
        "meta": meta,
        "spec": asdict(spec),
        "measured_steps": measured,
        "runs": runs,
        "results": {c: {p: {m: asdict(s) for m, s in ms.items()} for p, ms in ps.items()} for c, ps in results.items()},
        "comparison": {p: {m: asdict(c) for m, c in cs.items()} for p, cs in let_vs_baseline(results).items()},
        "teacher": None,
    }
    if spec.teacher_timing:
        timing = time_teacher(parse_job_config(spec.let_config, spec.extra_args))
        aligning_ms = results["let"]["aligning"]["step_ms"].mean
        report["teacher"] = {**asdict(timing), "share_of_let_aligning_step": timing.ms_per_step / aligning_ms}
    return report


