"""The teacher over one run: loaded at the first step it teaches, run on each teaching micro-batch, checked once on
its own LM loss, and released (with its memory) once it has left.

Whether it teaches is the stop rule's answer (let_components/stop/), asked by the trainer's step; this object only
does what the answer implies, and the trainer asks it nothing about how: whether the teacher is compiled or
replayed as CUDA graphs, what its release frees.
"""

import gc
import time

import torch
from torchtitan.config import JobConfig
from torchtitan.tools import utils
from torchtitan.tools.logging import logger

from .. import platform
from ..config import LETConfigError
from ..tokens.per_byte import text_byte_lengths
from .build import build_teacher, release_cuda_graphs, teacher_compiled, teacher_forward, uses_cuda_graphs
from .lm import TeacherLM
from .registry import TeacherModel, TeacherOptions
from .source import TeacherSource


class TeacherLifetime:
    model: TeacherModel | None = None

    def __init__(self, job_config: JobConfig, source: TeacherSource, options: TeacherOptions, device: torch.device):
        self.job_config, self.source, self.options, self.device = job_config, source, options, device
        self.cuda_graphs = uses_cuda_graphs(job_config)
        self.left = False
        self._sanity_pending = False
        self.text_bytes: torch.Tensor | None = None

    def load(self, step: int) -> None:
        """Build the teacher at the first step it teaches (a no-op while it is loaded)."""
        if self.model is not None:
            return
        start = time.perf_counter()
        self.model = build_teacher(self.job_config, self.source, self.options, self.device)
        self.forward = teacher_forward(self.model, self.job_config)
        self.text_bytes = _text_bytes(self.source)
        self._sanity_pending = self.options.layer == -1
        graphs = " (CUDA graphs)" if self.cuda_graphs else ""
        logger.info(
            f"[LET] teacher loaded at step {step}: {sum(p.numel() for p in self.model.parameters()):,} "
            f"parameters, {next(self.model.parameters()).dtype}, "
            f"compiled={teacher_compiled(self.job_config)}{graphs}, {time.perf_counter() - start:.1f}s"
        )

    def release(self, step: int) -> bool:
        """The teacher has left: free it and its memory. True only the first time (also when a resumed run never
        loaded it), so what else the teacher needed (its side of the data) stops once."""
        if self.left:
            return False
        self.left = True
        if self.model is None:
            return True
        reserved_before = _reserved_gib()
        self.model = self.forward = None
        gc.collect()
        if self.cuda_graphs:
            release_cuda_graphs()
        if not platform.on_cpu():
            utils.device_module.empty_cache()
        memory = "" if platform.on_cpu() else f" ({reserved_before:.2f} -> {_reserved_gib():.2f} GiB reserved)"
        logger.info(f"[LET] teaching finished after step {step - 1}: teacher released{memory}")
        return True

    def sanity_check(self, teacher_lm: TeacherLM) -> torch.Tensor | None:
        """Once, on the first batch it teaches: its LM loss on the training text (None on every other batch)."""
        if not self._sanity_pending:
            return None
        self._sanity_pending = False
        return teacher_lm.sanity_check(self.text_bytes, self.source.path)


def _text_bytes(source: TeacherSource) -> torch.Tensor | None:
    """The teacher tokenizer's bytes per id for the sanity line (None: it cannot say them; per token only)."""
    try:
        return torch.from_numpy(text_byte_lengths(source.tokenizer(), "let.teacher_path"))
    except LETConfigError:
        return None


def _reserved_gib() -> float:
    return 0.0 if platform.on_cpu() else utils.device_module.memory_reserved() / 2**30
