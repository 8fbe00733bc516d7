"""The config.json numbers of real HF Llama teachers: the memory estimate's default teacher (Llama-3.2-1B) and the
shapes of the benchmark's random-weight teachers, read off the one table a training run's dry run reads
(let_components/teacher/shapes.py), so the tools and the dry run agree."""

from dataclasses import asdict, dataclass, fields
from typing import Any

from let_components.teacher.shapes import TEACHER_CONFIGS

from .hf_folder import hf_llama_config


@dataclass(frozen=True)
class TeacherShape:
    """The config.json numbers of an HF Llama teacher; weights do not matter for cost measurements."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_scaling: dict[str, Any] | None = None

    def hf_config(self) -> dict[str, Any]:
        return hf_llama_config(**asdict(self), dtype="bfloat16")

    @classmethod
    def of(cls, name: str) -> "TeacherShape":
        """The shape of a teacher of let_components/teacher/shapes.py's table (a llama)."""
        config = TEACHER_CONFIGS[name]
        return cls(**{field.name: config[field.name] for field in fields(cls) if field.name in config})


TEACHER_SHAPES = {
    "smollm-135m": TeacherShape.of("SmolLM-135M"),
    "llama-3.2-1b": TeacherShape.of("Llama-3.2-1B"),
    # a tiny teacher in the project tokenizer's vocabulary: for CPU dry runs
    "debug": TeacherShape(128, 352, 2, 4, 4, 4096),
}
