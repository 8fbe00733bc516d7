"""The teacher as a training run holds it: dtype and compile policy, shared by the trainer and the benchmark."""

from collections.abc import Callable
from typing import Any

import torch
from torchtitan.config import TORCH_DTYPE_MAP, JobConfig

from .. import platform
from .registry import TeacherModel, TeacherOptions
from .source import TeacherSource


def teacher_compiled(job_config: JobConfig) -> bool:
    """The teacher is compiled where the student is: torch.compile on, and let.teacher_compile."""
    return job_config.compile.enable and job_config.let.teacher_compile


def build_teacher(job_config: JobConfig, source: TeacherSource, options: TeacherOptions,
                  device: torch.device) -> TeacherModel:
    """The frozen teacher from its source: float32 on CPU, let.teacher_dtype (bf16) on an accelerator, compiled
    with the student's backend when `teacher_compiled`."""
    let = job_config.let
    dtype = torch.float32 if platform.on_cpu() else TORCH_DTYPE_MAP[let.teacher_dtype]
    teacher = source.load(device, dtype, options)
    if teacher_compiled(job_config):
        if let.teacher_compile_mode == "default":
            teacher = torch.compile(teacher, backend=job_config.compile.backend)
        else:
            teacher = torch.compile(teacher, backend=job_config.compile.backend, mode=let.teacher_compile_mode)
    return teacher


def uses_cuda_graphs(job_config: JobConfig) -> bool:
    """The teacher forward is replayed as CUDA graphs (torch.compile mode reduce-overhead)."""
    return teacher_compiled(job_config) and job_config.let.teacher_compile_mode == "reduce-overhead"


def release_cuda_graphs() -> None:
    """Free the CUDA-graph memory pool that outlives `del teacher`. Only the teacher runs under CUDA graphs
    (torchtitan compiles the student without them), so the student's compiled code is untouched."""
    from torch._inductor.cudagraph_trees import reset_cudagraph_trees

    reset_cudagraph_trees()


def teacher_forward(teacher: TeacherModel, job_config: JobConfig) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """The teacher's forward as the training step calls it. Replayed as CUDA graphs, each call first marks a new
    step: a micro-batch's output is consumed before the next replay overwrites it."""
    if not uses_cuda_graphs(job_config):
        return teacher

    def replay(tokens: torch.Tensor, attention_masks: Any = None) -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        return teacher(tokens, attention_masks)

    return replay
