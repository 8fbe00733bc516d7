"""The teacher over one run: checked before it teaches, loaded at the first step it teaches, run on each teaching
micro-batch, checked once on its own LM loss, and released (with its memory) once it has left.

The trainer holds one `TeacherLifetime` and asks it nothing about how: whether the teacher is compiled or replayed
as CUDA graphs, what a resume after it left skips, what its release frees.
"""

import gc
import time
from typing import Any

import torch
import torch.distributed as dist
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.config import JobConfig
from torchtitan.tools import utils
from torchtitan.tools.logging import logger

from .. import platform
from ..tokens import check_tokenizer
from ..tokens.tokenizers import keep_teacher_tokenizer, teacher_text_bytes
from .build import build_teacher, release_cuda_graphs, teacher_compiled, teacher_forward, uses_cuda_graphs
from .checkpoint import keep_teacher_config, keep_teacher_fingerprint
from .checks import check_teacher
from .lm import TeacherLM
from .registry import TeacherModel


class TeacherLifetime:
    model: TeacherModel | None = None

    def __init__(self, job_config: JobConfig, device: torch.device, student_args: Any, tokenizer: BaseTokenizer,
                 needed: bool):
        """`needed`: the run (maybe resumed) will teach again; checks that read the teacher folder run only then
        (it may be gone once the teacher has left)."""
        self.job_config, self.device, self.tokenizer = job_config, device, tokenizer
        self.student_args = student_args
        self.attn_type = getattr(student_args, "attn_type", "sdpa")
        self.cuda_graphs = uses_cuda_graphs(job_config)
        self.left = False
        self._sanity_pending = False
        self._prepare(needed)
        self._keep_files(needed)

    def _prepare(self, needed: bool) -> None:
        """The student's tokenizer against the teacher's, and the teacher's byte table for its sanity check."""
        check_tokenizer(self.tokenizer, self.job_config, self.student_args.vocab_size, needed)
        self.text_bytes = teacher_text_bytes(self.job_config) if needed else None
        self.checked = needed

    def _keep_files(self, needed: bool) -> None:
        """Rank 0: the teacher's shapes and tokenizer stay with the job (a resume after the teacher left needs no
        teacher folder), and its fingerprint while it will teach (a resume must then find the same teacher)."""
        if dist.is_initialized() and dist.get_rank() != 0:
            return
        let, dump_folder = self.job_config.let, self.job_config.job.dump_folder
        keep_teacher_config(let.teacher_path, dump_folder)
        if needed:
            keep_teacher_fingerprint(let.teacher_path, dump_folder)
        keep_teacher_tokenizer(let.teacher_path, dump_folder)

    def check_after_load(self) -> None:
        """The checkpoint teaches where the checks before start thought the teacher had left: check it now."""
        if not self.checked:
            check_teacher(self.job_config, teacher_needed=True, resuming=True, attn_type=self.attn_type)
            self._prepare(True)

    def keep(self, needed: bool, step: int) -> bool:
        """Load the teacher at the first step it teaches; once it has left, release it and its memory. True on the
        step it leaves (also when a resumed run never loaded it)."""
        if needed and self.model is None:
            self._load(step)
        elif not needed and not self.left:
            self.left = True
            if self.model is not None:
                self._release(step)
            return True
        return False

    def _load(self, step: int) -> None:
        start = time.perf_counter()
        self.model = build_teacher(self.job_config, self.device, self.attn_type)
        self.forward = teacher_forward(self.model, self.job_config)
        self._sanity_pending = self.job_config.let.teacher_layer == -1
        graphs = " (CUDA graphs)" if self.cuda_graphs else ""
        logger.info(
            f"[LET] teacher loaded at step {step}: {sum(p.numel() for p in self.model.parameters()):,} "
            f"parameters, {next(self.model.parameters()).dtype}, "
            f"compiled={teacher_compiled(self.job_config)}{graphs}, {time.perf_counter() - start:.1f}s"
        )

    def _release(self, step: int) -> None:
        reserved_before = _reserved_gib()
        self.model = self.forward = None
        gc.collect()
        if self.cuda_graphs:
            release_cuda_graphs()
        if not platform.on_cpu():
            utils.device_module.empty_cache()
        memory = "" if platform.on_cpu() else f" ({reserved_before:.2f} -> {_reserved_gib():.2f} GiB reserved)"
        logger.info(f"[LET] teaching finished after step {step - 1}: teacher released{memory}")

    def sanity_check(self, teacher_lm: TeacherLM) -> torch.Tensor | None:
        """Once, on the first batch it teaches: its LM loss on the training text (None on every other batch)."""
        if not self._sanity_pending:
            return None
        self._sanity_pending = False
        return teacher_lm.sanity_check(self.text_bytes, self.job_config.let.teacher_path)


def _reserved_gib() -> float:
    return 0.0 if platform.on_cpu() else utils.device_module.memory_reserved() / 2**30
