"""Checks of the teacher folder that run before torchtitan builds anything (no process group, no weights read)."""

from torchtitan.config import JobConfig

from ..config import LETConfigError
from .checkpoint import check_teacher_unchanged, teacher_config
from .loader import build_meta_teacher, check_weights, teacher_architecture
from .registry import TeacherOptions, resolve_layer


def check_teacher(job_config: JobConfig, teacher_needed: bool, resuming: bool = False) -> None:
    """config.json readable and supported, let.teacher_layer in range, training.seq_len within learned positions,
    and (when the run will align) every weight present, readable and of config.json's shape now rather than at
    step 1, and, on a resume, the same teacher the run started with."""
    let = job_config.let
    config = teacher_config(let.teacher_path, job_config.job.dump_folder)
    architecture = teacher_architecture(config, let.teacher_path)
    resolve_layer(let.teacher_layer, config["num_hidden_layers"])
    max_positions = architecture.max_positions(config)
    if max_positions is not None and job_config.training.seq_len > max_positions:
        raise LETConfigError(
            f"training.seq_len={job_config.training.seq_len}: the teacher at let.teacher_path has learned positions "
            f"for at most {max_positions} tokens; use training.seq_len <= {max_positions}"
        )
    if teacher_needed:
        options = TeacherOptions(layer=let.teacher_layer, max_seq_len=job_config.training.seq_len)
        model = build_meta_teacher(config, architecture, options)
        check_weights(let.teacher_path, config, architecture, model)
        if resuming:
            check_teacher_unchanged(let.teacher_path, job_config.job.dump_folder)
