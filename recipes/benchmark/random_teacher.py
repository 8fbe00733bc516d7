"""A random-weight HF Llama teacher of a real model's shape: the cost of LET does not depend on the weights.

Written with torch + safetensors only (no transformers), so a bare GPU machine can build the benchmark's teacher.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..hf_folder import copy_tokenizer_files, hf_llama_config


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


def hf_llama_state_dict(shape: TeacherShape, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> dict:
    """HF LlamaForCausalLM tensor names and shapes, weights ~ N(0, 0.02), norm weights 1."""
    generator = torch.Generator().manual_seed(seed)
    d, head_dim = shape.hidden_size, shape.hidden_size // shape.num_attention_heads
    kv = shape.num_key_value_heads * head_dim

    def normal(*size: int) -> torch.Tensor:
        return (torch.randn(*size, generator=generator) * 0.02).to(dtype)

    state_dict = {
        "model.embed_tokens.weight": normal(shape.vocab_size, d),
        "model.norm.weight": torch.ones(d, dtype=dtype),
    }
    for i in range(shape.num_hidden_layers):
        prefix = f"model.layers.{i}."
        state_dict |= {
            prefix + "self_attn.q_proj.weight": normal(d, d),
            prefix + "self_attn.k_proj.weight": normal(kv, d),
            prefix + "self_attn.v_proj.weight": normal(kv, d),
            prefix + "self_attn.o_proj.weight": normal(d, d),
            prefix + "mlp.gate_proj.weight": normal(shape.intermediate_size, d),
            prefix + "mlp.up_proj.weight": normal(shape.intermediate_size, d),
            prefix + "mlp.down_proj.weight": normal(d, shape.intermediate_size),
            prefix + "input_layernorm.weight": torch.ones(d, dtype=dtype),
            prefix + "post_attention_layernorm.weight": torch.ones(d, dtype=dtype),
        }
    if not shape.tie_word_embeddings:
        state_dict["lm_head.weight"] = normal(shape.vocab_size, d)
    return state_dict


def make_random_teacher(folder: str | Path, shape: TeacherShape, tokenizer_dir: str | Path | None = None) -> Path:
    """An HF Llama folder (config.json + model.safetensors + tokenizer files) with random weights.

    The tokenizer must not emit ids beyond `shape.vocab_size` (the trainer checks).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(shape.hf_config(), indent=2))
    save_file(hf_llama_state_dict(shape), str(folder / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, folder)
    return folder
