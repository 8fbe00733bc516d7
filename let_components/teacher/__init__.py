"""Frozen, forward-only teachers loaded from Hugging Face-format folders.

Where the run's teacher comes from is decided once (run_source.py: `teacher_source`, the only reader of
let.teacher_path; source.py: the folder and the job's copies; stand_in.py: a dry run's stand-in). Architectures
register themselves by HF `model_type` (registry.py), so adding one never touches the trainer; a model_type with no
native module is built by transformers (transformers_backend.py, let.teacher_backend). Reading the folder
(checkpoint.py; text.py: the text settings), the checks before start (checks.py), loading (loader.py), the dtype
and compile policy of a run (build.py) and the teacher over a run (lifetime.py) each live in one place.
"""

from . import gpt_neox, llama, opt, qwen  # noqa: F401  (register "gpt_neox", "llama", "opt", "qwen2", "qwen3")
from .build import build_teacher, release_cuda_graphs, teacher_compiled, teacher_forward, uses_cuda_graphs
from .checkpoint import TEACHER_FINGERPRINT, read_hf_config
from .checks import check_teacher
from .loader import load_teacher, teacher_architecture, teacher_backend
from .registry import TEACHER_ARCHITECTURES, TeacherArchitecture, TeacherModel, TeacherOptions, register_teacher
from .run_source import teacher_source
from .source import TEACHER_CONFIG_COPY, TOKENIZER_COPY, TeacherSource
from .text import text_config

__all__ = [
    "TEACHER_ARCHITECTURES",
    "TEACHER_CONFIG_COPY",
    "TEACHER_FINGERPRINT",
    "TOKENIZER_COPY",
    "TeacherArchitecture",
    "TeacherModel",
    "TeacherOptions",
    "TeacherSource",
    "build_teacher",
    "check_teacher",
    "load_teacher",
    "read_hf_config",
    "register_teacher",
    "release_cuda_graphs",
    "teacher_architecture",
    "teacher_backend",
    "teacher_compiled",
    "teacher_forward",
    "teacher_source",
    "text_config",
    "uses_cuda_graphs",
]
