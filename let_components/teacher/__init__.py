"""Frozen, forward-only teachers loaded from Hugging Face-format folders.

Architectures register themselves by HF `model_type` (registry.py), so adding one never touches the trainer; a
model_type with no native module is built by transformers (transformers_backend.py, let.teacher_backend).
Reading the folder (checkpoint.py), the checks before start (checks.py), loading (loader.py) and the dtype and
compile policy of a run (build.py) each live in one place.
"""

from . import gpt_neox, llama, opt, qwen  # noqa: F401  (register "gpt_neox", "llama", "opt", "qwen2", "qwen3")
from .build import build_teacher, release_cuda_graphs, teacher_compiled, teacher_forward, uses_cuda_graphs
from .checkpoint import (
    TEACHER_CONFIG_COPY,
    TEACHER_FINGERPRINT,
    keep_teacher_config,
    keep_teacher_fingerprint,
    read_hf_config,
    teacher_config,
    text_config,
)
from .checks import check_teacher
from .loader import load_teacher, teacher_architecture, teacher_backend
from .registry import TEACHER_ARCHITECTURES, TeacherArchitecture, TeacherModel, TeacherOptions, register_teacher

__all__ = [
    "TEACHER_ARCHITECTURES",
    "TEACHER_CONFIG_COPY",
    "TEACHER_FINGERPRINT",
    "TeacherArchitecture",
    "TeacherModel",
    "TeacherOptions",
    "build_teacher",
    "check_teacher",
    "keep_teacher_config",
    "keep_teacher_fingerprint",
    "load_teacher",
    "read_hf_config",
    "register_teacher",
    "release_cuda_graphs",
    "teacher_architecture",
    "teacher_backend",
    "teacher_compiled",
    "teacher_config",
    "text_config",
    "teacher_forward",
    "uses_cuda_graphs",
]
