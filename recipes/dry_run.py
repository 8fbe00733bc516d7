"""A dry run's start (comm.mode fake_backend or local_tensor): the job adapted (let_components/dry_run.py), the
trainer built, and after step 1 rank 0's memory measured beside recipes.probes.memory's estimate.

What is measured is what the fake backend leaves real: rank 0's shards of the student's weights, gradients and
AdamW state, and the teacher, as the storage of its tensors after the first step (the teacher is still loaded).
Activations, logits and FSDP's unsharded buffers at the config's own sequence length are the estimate's alone: on a
CPU the dry run steps short windows, and nothing on a CPU shows what a GPU allocator reserves.
"""

import os
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.distributed.tensor import DTensor
from torchtitan.config import JobConfig
from torchtitan.train import Trainer

from let_components import dry_run
from let_components.config import LETConfigError
from let_components.teacher import teacher_source
from let_components.terms.alignment import AlignmentTerm
from let_components.terms.distillation import DistillationTerm

from .common import student_args
from .probes.memory import GIB, LET_ITEMS, MemoryItem, MemorySetup, estimate_memory, total

TERM_ROWS = {AlignmentTerm: "hidden", DistillationTerm: "logits"}
"""The estimate's term row (recipes.probes.memory's signal) of each term the run may build; another term gets no
estimate rather than another's row."""
LOCAL_TENSOR_SHARE = 0.5
"""local_tensor holds every rank's shard in this one process: it may take at most this share of the free memory."""


def start_dry_run(build: Callable[[JobConfig], Trainer], job_config: JobConfig, args: Sequence[str]) -> Trainer:
    """The dry run's trainer: the job adapted, local_tensor refused where it cannot fit, the memory report armed."""
    world = dry_run.world_size()
    dry_run.adapt(job_config, args)
    if job_config.comm.mode == "local_tensor":
        check_local_tensor_fits(job_config, world)
    trainer = build(job_config)
    report_after_first_step(trainer, job_config, world)
    return trainer


def check_local_tensor_fits(job_config: JobConfig, world: int) -> None:
    """local_tensor simulates all `world` ranks in this process: every shard of the fp32 weights at least."""
    spec, args = student_args(job_config)
    with torch.device("meta"):
        parameters = sum(p.numel() for p in spec.model_cls(args).parameters())
    needed, free = 4 * parameters / GIB, _available_gib()
    if needed > LOCAL_TENSOR_SHARE * free:
        raise LETConfigError(
            f"comm.mode='local_tensor': this process would hold all {world} ranks' shards, {needed:.1f} GiB of fp32 "
            f"weights of {job_config.model.name} {job_config.model.flavor} alone, against {free:.1f} GiB available "
            "here; use comm.mode='fake_backend' (rank 0 alone, COMM_MODE=fake_backend) or a debug config"
        )


def _available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def storage_gib(tensors: Iterable[torch.Tensor | None]) -> float:
    """GiB held by the tensors' storages on this rank: a DTensor's local shard, each storage once."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        if tensor is None:
            continue
        local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
        if local.device.type != "meta":
            storage = local.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values()) / GIB


@dataclass
class Measured:
    """Rank 0's tensors after a step, in GiB."""

    weights: float
    gradients: float
    optimizer: float
    teacher: float | None
    """None: no teacher (a baseline, or one that was never loaded)."""
    teacher_dtype: str = ""


def measure(trainer: Trainer) -> Measured:
    parameters = [p for model in trainer.model_parts for p in model.parameters()]
    states = [value for optimizer in trainer.optimizers for state in optimizer.state.values()
              for value in state.values() if isinstance(value, torch.Tensor)]
    teacher = getattr(getattr(trainer, "teacher", None), "model", None)
    teacher_tensors = [*teacher.parameters(), *teacher.buffers()] if teacher is not None else []
    return Measured(
        weights=storage_gib(parameters), gradients=storage_gib(p.grad for p in parameters),
        optimizer=storage_gib(states), teacher=storage_gib(teacher_tensors) if teacher is not None else None,
        teacher_dtype=str(next(teacher.parameters()).dtype).removeprefix("torch.") if teacher is not None else "",
    )


def config_shape(job_config: JobConfig) -> tuple[int, int]:
    """(seq_len, local_batch_size) of the config file itself: what the estimate is for, whatever the dry run ran (a
    flag that shrinks the windows a CPU steps does not shrink the cluster job's estimate)."""
    toml = tomllib.loads(Path(job_config.job.config_file).read_text()) if job_config.job.config_file else {}
    training = toml.get("training", {})
    return training.get("seq_len", job_config.training.seq_len), training.get("local_batch_size",
                                                                              job_config.training.local_batch_size)


def estimate(job_config: JobConfig, world: int,
             signal: str | None) -> tuple[list[MemoryItem], MemorySetup, int] | str:
    """recipes.probes.memory's rows for this config at its own seq_len and local batch on `world` GPUs, or why
    there is none; `signal`: the term row of the term the run built (None: a baseline, no teacher rows)."""
    teacher = teacher_source(job_config)
    if teacher is None:
        return "no estimate: the config names no teacher, whose vocabulary the estimate needs"
    parallelism = job_config.parallelism
    tp, pp = parallelism.tensor_parallel_degree, parallelism.pipeline_parallel_degree
    if tp > 1 or pp > 1:  # this estimate is FSDP's; a TP x PP layout's is per stage
        return f"no estimate here for TP {tp} x PP {pp} (python -m recipes.probes.memory --tp {tp} --pp {pp})"
    spec, args = student_args(job_config)
    seq_len, batch = config_shape(job_config)
    setup = MemorySetup(gpus=world, seq_len=seq_len)
    try:
        items = estimate_memory(args, teacher.config, setup, (batch,), spec.model_cls, signal or "hidden",
                                job_config.let.kd_chunk_tokens)
    except ValueError as error:  # MoE students (the estimate covers dense ones), a term it has no row for
        return f"no estimate ({error})"
    if signal is None:  # a baseline: no teacher, no term
        items = [item for item in items if not item.name.startswith(LET_ITEMS)]
    return items, setup, batch


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 0.1 else f"{gib * 1024:.1f} MiB"


def format_report(measured: Measured, estimated: tuple[list[MemoryItem], MemorySetup, int] | str, step: int) -> str:
    """One line: each measured row beside its estimate, what only the estimate covers, and the verdict."""
    shown = [("student weights", measured.weights, "student fp32 master weights"),
             ("gradients", measured.gradients, "student fp32 gradients"),
             ("AdamW state", measured.optimizer, "AdamW")]
    if isinstance(estimated, str):
        rows = [f"{name} {_size(value)}" for name, value, _ in shown]
        if measured.teacher is not None:
            rows.append(f"teacher {_size(measured.teacher)} {measured.teacher_dtype}")
        return f"rank 0's memory after step {step}, measured: {', '.join(rows)}; {estimated}"
    items, setup, batch = estimated
    gib = {item.name: item.gib[batch] for item in items}

    def row(prefix: str) -> float:
        return sum(value for name, value in gib.items() if name.startswith(prefix))

    rows = [f"{name} {_size(value)} ({_size(row(prefix))})" for name, value, prefix in shown]
    if measured.teacher is not None:
        rows.append(f"teacher {_size(measured.teacher)} {measured.teacher_dtype} ({_size(row('teacher weights'))} "
                    "bf16)")
    counted = sum(row(prefix) for _, _, prefix in shown)
    counted += row("teacher weights") if measured.teacher is not None else 0
    whole = total(items)[batch]
    term = "the teacher's term, " if measured.teacher is not None else ""
    rest = whole - counted
    verdict = (f"{setup.gpu_capacity_gib - whole:.1f} GiB headroom" if whole <= setup.gpu_capacity_gib
               else f"{whole - setup.gpu_capacity_gib:.1f} GiB over")
    return (
        f"rank 0's memory after step {step}, measured (estimate for {setup.gpus} GPUs, seq_len {setup.seq_len}, "
        f"local batch {batch}, bf16, full activation checkpointing): {', '.join(rows)}; not measured here: FSDP "
        f"buffers, activations, logits, {term}overhead (estimate {_size(rest)}); estimate total "
        f"{whole:.1f} GiB per GPU: {verdict} on an 80 GB card ({setup.gpu_capacity_gib} GiB)"
    )


def report_after_first_step(trainer: Trainer, job_config: JobConfig, world: int) -> None:
    """Log the report once, right after the first optimizer step (gradients and AdamW state exist, the teacher of
    a LET run is still loaded)."""
    term = getattr(trainer, "term", None)
    signal = None if term is None else TERM_ROWS.get(type(term), type(term).__name__)

    def report(*_) -> None:
        handle.remove()
        dry_run.say(format_report(measure(trainer), estimate(job_config, world, signal), trainer.step))

    handle = trainer.optimizers.register_step_post_hook(report)
