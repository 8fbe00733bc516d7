"""Checks of the teacher folder that run before torchtitan builds anything (no process group, no weights read)."""


from torchtitan.tools.logging import logger

from ..config import LETConfigError
from .loader import build_meta_teacher
from .registry import TeacherOptions, resolve_layer
from .source import TeacherSource


def check_teacher(source: TeacherSource, options: TeacherOptions, seq_key: str, needed: bool,
                  resuming: bool = False) -> None:
    """config.json readable and supported, the teacher layer in range, the window (`options.max_seq_len`, the
    config key `seq_key`) within learned positions, and (when the run will teach) the teacher buildable with the
    student's attention kernel, every weight present, readable and of config.json's shape now rather than at step 1,
    and, on a resume, the same teacher the run started with."""
    logger.info(f"[LET] teacher model_type {source.config.get('model_type')!r}: {source.backend} backend "
                f"(let.teacher_backend={source.requested_backend!r})")
    architecture = source.architecture
    resolve_layer(options.layer, source.text["num_hidden_layers"])
    max_positions, length = architecture.max_positions(source.config), options.max_seq_len
    if max_positions is not None and length > max_positions:
        raise LETConfigError(
            f"{seq_key}={length}: the teacher at let.teacher_path has learned positions for at most {max_positions} "
            f"tokens; use {seq_key} <= {max_positions}"
        )
    if needed:
        model = build_meta_teacher(source.config, architecture, options)
        source.check_weights(architecture, model)
        if resuming:
            source.check_unchanged()
