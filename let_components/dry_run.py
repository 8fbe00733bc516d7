"""Dry runs: one process stands for rank 0 of the whole world, so a cluster config builds and steps on one machine.

torchtitan 0.2.2's `comm.mode = "fake_backend"` (or `"local_tensor"`) with `NGPU` ranks: the model is built on meta,
FSDP2/AC/compile are applied for that world size, rank 0's shard is materialised and real steps run with
collectives that return placeholders (`COMM_MODE=fake_backend NGPU=32 ./run_train.sh --job.config_file ...`).
`adapt` makes the job one that can run on this machine, each change said once in the log and every default
overridable by a flag; where the teacher folder is missing, its source is a stand-in of its shape
(teacher/stand_in.py, chosen by `teacher_source`). Everything else runs unchanged.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torchtitan.config import JobConfig
from torchtitan.distributed import ParallelDims
from torchtitan.tools.logging import logger

from .config import LETConfigError

FAKE_MODES = ("fake_backend", "local_tensor")
"""torchtitan's comm.mode values in which one process stands for the whole world."""
DRY_RUN_FOLDER = "dry_run"
"""A dry run writes below its config's dump folder, never into a real run's files."""
CANNOT_SHOW = (
    "real collectives' results (all-reduces return placeholders: loss, grad_norm and the [LET] metrics are rank 0's "
    "alone or meaningless), speed (tps, mfu), activation memory at the config's own sequence length, and NCCL "
    "itself (init, topology, timeouts)"
)

# what a dry run sets unless its command line sets it
STEPS = 3
"""training.steps: a few steps..."""
STOP_STEP = 1
"""let.stop_step: ...with the teacher leaving before the last, so its release runs too."""
CPU_SEQ_LEN = 32
"""training.seq_len on a CPU: a whole-width step of a 7B student at its own 2048 would take hours."""


def is_dry_run(job_config: JobConfig) -> bool:
    return job_config.comm.mode in FAKE_MODES


def fake_world() -> bool:
    """This process stands for every rank (the fake backend): no other process to agree with, no gloo group."""
    return dist.is_initialized() and dist.get_backend() == "fake"


def data_rank(dp_rank: int) -> int:
    """The data-parallel rank a dataloader shards by. Under comm.mode = "local_tensor" torchtitan hands a symbolic
    int holding every simulated rank's value, which the datasets library cannot shard with; torchtitan 0.2.2 builds
    and never steps in that mode, so rank 0's pipeline stands for all."""
    return dp_rank if isinstance(dp_rank, int) else 0


def world_size() -> int:
    """The world a dry run stands for: NGPU, which torchtitan's fake modes require too."""
    world = os.environ.get("NGPU", "")
    if not world.isdigit() or int(world) < 1:
        raise LETConfigError(f"NGPU={world!r}: a dry run (COMM_MODE=fake_backend) stands for NGPU ranks; set it to "
                             "the world size the config is for, e.g. NGPU=32")
    return int(world)


def say(what: str) -> None:
    """One line of what the dry run changed or cannot show."""
    logger.info(f"[LET] dry run: {what}")


def _given(args: Sequence[str], key: str) -> bool:
    """Whether the command line sets `key` (a flag wins over the dry run's default), spelled with underscores or,
    as torchtitan's parser also takes it, hyphens."""
    return any(arg.startswith("--") and arg[2:].split("=", 1)[0].replace("-", "_") == key for arg in args)


def batch_degree(job_config: JobConfig, world_size: int) -> int:
    """The data-parallel degree torchtitan derives for `world_size` ranks (dp_replicate x dp_shard)."""
    p = job_config.parallelism
    dims = ParallelDims(dp_shard=p.data_parallel_shard_degree, dp_replicate=p.data_parallel_replicate_degree,
                        cp=p.context_parallel_degree, tp=p.tensor_parallel_degree, pp=p.pipeline_parallel_degree,
                        ep=p.expert_parallel_degree, etp=p.expert_tensor_parallel_degree, world_size=world_size)
    return dims.dp_replicate * dims.dp_shard


def adapt(job_config: JobConfig, args: Sequence[str]) -> None:
    """Turn a parsed job into its dry run (a no-op unless comm.mode is a fake one): its own dump folder, a few steps,
    no checkpoint, the sample corpus and, on a CPU, short windows of one micro-batch per step."""
    if not is_dry_run(job_config):
        return
    world = world_size()
    training, let = job_config.training, getattr(job_config, "let", None)
    stages = job_config.parallelism.pipeline_parallel_degree
    if stages > 1:
        raise LETConfigError(
            f"parallelism.pipeline_parallel_degree={stages}: a dry run cannot step a pipeline (its stages send each "
            "other tensor shapes point to point, which the fake backend answers with placeholders); a PP layout's "
            f"memory per stage: python -m recipes.probes.memory --pp {stages}"
        )
    job_config.job.dump_folder = str(Path(job_config.job.dump_folder) / DRY_RUN_FOLDER)
    say(f"writes to job.dump_folder='{job_config.job.dump_folder}'")
    if let is not None and not _given(args, "let.stop_step"):
        let.stop_step = STOP_STEP
    if not _given(args, "training.steps"):
        training.steps = max(STEPS, let.stop_step + 2 if let is not None else 0)
    teacher = f", the teacher teaching steps 1..{let.stop_step}" if let is not None and let.enable else ""
    say(f"training.steps={training.steps}{teacher} (flags --training.steps and --let.stop_step set others)")
    if job_config.metrics.log_freq > 1 and not _given(args, "metrics.log_freq"):
        job_config.metrics.log_freq = 1  # a line per step: the teacher's step and the plain ones after it
    if job_config.comm.mode == "local_tensor" and job_config.validation.enable:
        job_config.validation.enable = False
        say("validation.enable=true -> false (torchtitan 0.2.2 builds and never steps under local_tensor)")
    if job_config.checkpoint.enable:
        job_config.checkpoint.enable = False
        say("checkpoint.enable=true -> false (rank 0's shard alone is no checkpoint)")
    _use_sample_corpus(job_config)
    if not torch.accelerator.is_available():
        _short_cpu_steps(job_config, args, world)
    ranks = f"{world} rank{'s' * (world != 1)}"
    if job_config.comm.mode == "local_tensor":
        say(f"local_tensor simulates {ranks} in this process; torchtitan 0.2.2 only builds in that mode (no step, no "
            "memory report): COMM_MODE=fake_backend steps rank 0")
    else:
        say(f"fake_backend with {ranks}, this process rank 0; it cannot show {CANNOT_SHOW}")


def _use_sample_corpus(job_config: JobConfig) -> None:
    """The data: the bundled sample corpus (a dry run needs no network and no data folder)."""
    for key, name in (("training", "sample_corpus"), ("validation", "sample_corpus_validation")):
        section = getattr(job_config, key)
        if section.dataset != name or section.dataset_path:
            say(f"{key}.dataset={section.dataset!r} -> {name!r} (assets/sample_corpus)")
            section.dataset, section.dataset_path = name, None


def _short_cpu_steps(job_config: JobConfig, args: Sequence[str], world: int) -> None:
    """On a CPU: windows of cpu_seq_len tokens and one micro-batch per step (rank 0 computes at full width), after
    checking the config's own global batch divides as it must on `world` ranks."""
    training = job_config.training
    if training.seq_len > CPU_SEQ_LEN and not _given(args, "training.seq_len"):
        say(f"training.seq_len={training.seq_len} -> {CPU_SEQ_LEN} on a CPU (activations at "
            f"{training.seq_len}: the memory estimate)")
        training.seq_len = CPU_SEQ_LEN
    if not _given(args, "validation.seq_len") and job_config.validation.seq_len > training.seq_len:
        # the student's RoPE table is built for training.seq_len: a longer validation window would not fit it
        say(f"validation.seq_len={job_config.validation.seq_len} -> {training.seq_len}, as training.seq_len")
        job_config.validation.seq_len = training.seq_len
    validation = job_config.validation
    if validation.enable and validation.steps > 1 and not _given(args, "validation.steps"):
        say(f"validation.steps={validation.steps} -> 1 on a CPU (torchtitan validates at step 1)")
        validation.steps = 1
    local = training.local_batch_size * batch_degree(job_config, world)
    if training.global_batch_size > 0 and training.global_batch_size % local:
        raise LETConfigError(
            f"training.global_batch_size={training.global_batch_size}: must be a multiple of "
            f"training.local_batch_size x data-parallel degree = {training.local_batch_size} x "
            f"{local // training.local_batch_size} = {local} at {world} ranks"
        )
    if training.global_batch_size > local and not _given(args, "training.global_batch_size"):
        say(f"training.global_batch_size={training.global_batch_size} -> {local} on a CPU (1 micro-batch per step "
            f"instead of {training.global_batch_size // local}; {training.global_batch_size} divides as it must)")
        training.global_batch_size = local
