"""Checks of the teacher folder that run before torchtitan builds anything (no process group, no weights read)."""

from torchtitan.config import JobConfig
from torchtitan.tools.logging import logger

from ..config import LETConfigError
from ..tokens import teacher_seq_len
from .checkpoint import check_teacher_unchanged, teacher_config, text_config
from .loader import build_meta_teacher, check_weights, teacher_architecture, teacher_backend
from .registry import TeacherOptions, resolve_layer


def check_teacher(job_config: JobConfig, teacher_needed: bool, resuming: bool = False, attn_type: str = "sdpa") -> None:
    """config.json readable and supported, let.teacher_layer in range, training.seq_len within learned positions,
    and (when the run will teach) the teacher buildable with the student's attention kernel (`attn_type`), every
    weight present, readable and of config.json's shape now rather than at step 1, and, on a resume, the same
    teacher the run started with."""
    let = job_config.let
    config = teacher_config(let.teacher_path, job_config.job.dump_folder)
    backend = teacher_backend(config, let.teacher_path, let.teacher_backend)
    logger.info(f"[LET] teacher model_type {config.get('model_type')!r}: {backend} backend "
                f"(let.teacher_backend={let.teacher_backend!r})")
    architecture = teacher_architecture(config, let.teacher_path, backend)
    resolve_layer(let.teacher_layer, text_config(config)["num_hidden_layers"])
    max_positions, length = architecture.max_positions(config), teacher_seq_len(job_config)
    if max_positions is not None and length > max_positions:
        key = "training.seq_len" if length == job_config.training.seq_len else "let.teacher_seq_len"
        raise LETConfigError(
            f"{key}={length}: the teacher at let.teacher_path has learned positions for at most {max_positions} "
            f"tokens; use {key} <= {max_positions}"
        )
    if teacher_needed:
        options = TeacherOptions(layer=let.teacher_layer, max_seq_len=length, attn_type=attn_type, backend=backend)
        model = build_meta_teacher(config, architecture, options)
        check_weights(let.teacher_path, config, architecture, model)
        if resuming:
            check_teacher_unchanged(let.teacher_path, job_config.job.dump_folder)
