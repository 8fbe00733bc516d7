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
import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from . import platform

REPO_ROOT = Path(__file__).resolve().parent.parent
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
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


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
    """NGPU for run_train.sh; None lets it count the machine's accelerators."""
    teacher_timing: bool = True
    """Also time the teacher forward alone in this process."""
    label: str = ""
    """Name of this comparison in combined summaries (recipes/gpu_checks.sh)."""
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
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Spread(statistics.fmean(values), min(values), max(values), std, list(values))


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
        mine = sorted((r for r in runs if r["config"] == config), key=lambda r: r["repeat"])
        results[config] = {
            phase: {metric: spread([r["phases"][phase][metric] for r in mine]) for metric in TAGS}
            for phase in PHASES
        }
    return results


@dataclass
class Comparison:
    """LET against baseline for one metric: `value` from the means, `per_repeat` from each alternating pair."""

    value: float
    per_repeat: list[float]
    min: float
    max: float


def ratio(let: Spread, baseline: Spread) -> Comparison:
    per_repeat = [a / b for a, b in zip(let.values, baseline.values, strict=True)]
    return Comparison(let.mean / baseline.mean, per_repeat, min(per_repeat), max(per_repeat))


def delta(let: Spread, baseline: Spread) -> Comparison:
    per_repeat = [a - b for a, b in zip(let.values, baseline.values, strict=True)]
    return Comparison(let.mean - baseline.mean, per_repeat, min(per_repeat), max(per_repeat))


def compare(results: dict[str, dict[str, dict[str, Spread]]]) -> dict[str, dict[str, Comparison]]:
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


def run_training(args: list[str], log_file: Path, ngpu: int | None) -> float:
    """One run_train.sh subprocess, console to `log_file`; returns its wall time in seconds."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if ngpu is not None:
        env["NGPU"] = str(ngpu)
    start = time.perf_counter()
    with log_file.open("w") as log:
        result = subprocess.run(
            ["bash", str(REPO_ROOT / "run_train.sh"), *args], cwd=REPO_ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"run_train.sh exited with {result.returncode} (log: {log_file}):\n{tail}")
    return time.perf_counter() - start


def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """metric -> step -> value from the TensorBoard events under `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    scalars: dict[str, dict[int, float]] = {metric: {} for metric in TAGS}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={SCALARS: 0})
        accumulator.Reload()
        for metric, tag in TAGS.items():
            if tag in accumulator.Tags()["scalars"]:
                scalars[metric].update({e.step: e.value for e in accumulator.Scalars(tag)})
    return scalars


def measure_run(spec: BenchmarkSpec, config: str, repeat: int, measured: dict[str, list[int]]) -> dict[str, Any]:
    # absolute: run_train.sh runs in the repository root, this process may not
    dump_folder = Path(spec.out).resolve() / "runs" / f"{config}_{repeat}"
    shutil.rmtree(dump_folder, ignore_errors=True)  # stale events of an earlier benchmark would mix in
    dump_folder.mkdir(parents=True)
    log_file = dump_folder / "train.log"
    wall_s = run_training(train_args(spec, config, dump_folder), log_file, spec.ngpu)
    if config == "let" and "teacher released" not in log_file.read_text():
        raise RuntimeError(f"{log_file}: the LET run never released its teacher; is [let] enable = true?")
    scalars = read_scalars(dump_folder)
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


def parse_job_config(config_file: str, extra_args: list[str]):
    """The JobConfig a run with these arguments trains with (torchtitan's own parser, [let] included)."""
    from torchtitan.config import ConfigManager

    return ConfigManager().parse_args(["--job.config_file", config_file, *extra_args])


def time_teacher(job_config, iters: int = 20, warmup: int = 3) -> TeacherTiming:
    """Median time of the teacher forward on one local batch, with the trainer's dtype and compile policy.

    The teacher is built by the trainer's own `build_teacher` (dtype and compile policy). GPU time is read with CUDA
    events (the host returns before the kernels finish); CPU time with perf_counter.
    """
    from .trainer import build_teacher, teacher_compiled

    training = job_config.training
    device = torch.device("cpu") if platform.on_cpu() else torch.accelerator.current_accelerator()
    forward = build_teacher(job_config, device)
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


def run_metadata(spec: BenchmarkSpec) -> dict[str, Any]:
    on_cpu = platform.on_cpu()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device_name(),
        "torch": torch.__version__,
        "torchtitan": importlib.metadata.version("torchtitan"),
        "command": spec.command,
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
        measure_run(spec, config, repeat, measured) for repeat in range(1, spec.repeats + 1) for config in CONFIGS
    ]
    # only now: asking CUDA for the device name would hold a CUDA context beside every training run
    meta = {**run_metadata(spec), "date": started, "load_average_1min": load_before}
    meta["load_average_1min_after"] = os.getloadavg()[0]
    results = aggregate(runs)
    report: dict[str, Any] = {
        "label": spec.label,
        "meta": meta,
        "spec": asdict(spec),
        "measured_steps": measured,
        "runs": runs,
        "results": {c: {p: {m: asdict(s) for m, s in ms.items()} for p, ms in ps.items()} for c, ps in results.items()},
        "comparison": {p: {m: asdict(c) for m, c in cs.items()} for p, cs in compare(results).items()},
        "teacher": None,
    }
    if spec.teacher_timing:
        timing = time_teacher(parse_job_config(spec.let_config, spec.extra_args))
        aligning_ms = results["let"]["aligning"]["step_ms"].mean
        report["teacher"] = {**asdict(timing), "share_of_let_aligning_step": timing.ms_per_step / aligning_ms}
    return report


def write_report(report: dict[str, Any], out: str | Path) -> str:
    """benchmark.json + benchmark.md in `out`; returns the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(report, indent=2))
    markdown = format_markdown(report)
    (out / "benchmark.md").write_text(markdown)
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
    """One table over several benchmark reports (one row per check), for recipes/gpu_checks.sh and the docs."""
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


# ---- a random teacher of a real model's shape --------------------------------------------------------------


@dataclass(frozen=True)
class TeacherShape:
    """The config.json numbers of an HF Llama teacher; weights do not matter for cost measurements."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_scaling: dict[str, Any] | None = None

    def hf_config(self) -> dict[str, Any]:
        config = {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "torch_dtype": "bfloat16",
            **{k: v for k, v in asdict(self).items() if v is not None},
        }
        return config


TEACHER_SHAPES = {
    "smollm-135m": TeacherShape(576, 1536, 30, 9, 3, 49152),
    "llama-3.2-1b": TeacherShape(
        2048, 8192, 16, 32, 8, 128256, rope_theta=500000.0, max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
    ),
    # the size of tests/conftest.py's tiny teacher: for CPU dry runs
    "debug": TeacherShape(128, 352, 2, 4, 4, 4096),
}


def hf_llama_state_dict(shape: TeacherShape, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> dict:
    """HF LlamaForCausalLM tensor names and shapes, weights ~ N(0, 0.02), norm weights 1."""
    generator = torch.Generator().manual_seed(seed)
    d, head_dim = shape.hidden_size, shape.hidden_size // shape.num_attention_heads
    kv = shape.num_key_value_heads * head_dim

    def normal(*size: int) -> torch.Tensor:
        return (torch.randn(*size, generator=generator) * 0.02).to(dtype)

    state_dict = {
        "model.embed_tokens.weight": normal(shape.vocab_size, d),
        "model.norm.weight": torch.ones(d, dtype=dtype),
    }
    for i in range(shape.num_hidden_layers):
        prefix = f"model.layers.{i}."
        state_dict |= {
            prefix + "self_attn.q_proj.weight": normal(d, d),
            prefix + "self_attn.k_proj.weight": normal(kv, d),
            prefix + "self_attn.v_proj.weight": normal(kv, d),
            prefix + "self_attn.o_proj.weight": normal(d, d),
            prefix + "mlp.gate_proj.weight": normal(shape.intermediate_size, d),
            prefix + "mlp.up_proj.weight": normal(shape.intermediate_size, d),
            prefix + "mlp.down_proj.weight": normal(d, shape.intermediate_size),
            prefix + "input_layernorm.weight": torch.ones(d, dtype=dtype),
            prefix + "post_attention_layernorm.weight": torch.ones(d, dtype=dtype),
        }
    if not shape.tie_word_embeddings:
        state_dict["lm_head.weight"] = normal(shape.vocab_size, d)
    return state_dict


def make_random_teacher(folder: str | Path, shape: TeacherShape, tokenizer_dir: str | Path | None = None) -> Path:
    """An HF Llama folder (config.json + model.safetensors + tokenizer files) with random weights.

    Written with torch + safetensors only (no transformers), so a bare GPU machine can build the benchmark's
    teacher. The tokenizer must not emit ids beyond `shape.vocab_size` (the trainer checks).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(shape.hf_config(), indent=2))
    save_file(hf_llama_state_dict(shape), str(folder / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copy(Path(tokenizer_dir) / name, folder / name)
    return folder
