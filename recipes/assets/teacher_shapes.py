"""The config.json numbers of real HF Llama teachers: the memory estimate's default teacher (Llama-3.2-1B) and the
shapes of the benchmark's random-weight teachers. Data only, so both tools read one table."""

from dataclasses import asdict, dataclass
from typing import Any

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


TEACHER_SHAPES = {
    "smollm-135m": TeacherShape(576, 1536, 30, 9, 3, 49152),
    "llama-3.2-1b": TeacherShape(
        2048, 8192, 16, 32, 8, 128256, rope_theta=500000.0, max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
    ),
    # a tiny teacher in the project tokenizer's vocabulary: for CPU dry runs
    "debug": TeacherShape(128, 352, 2, 4, 4, 4096),
}
