"""A random-weight HF Llama teacher of a real model's shape: the cost of LET does not depend on the weights.

Written with torch + safetensors only (no transformers), so a bare GPU machine can build the benchmark's teacher.
"""

import json
from pathlib import Path

import torch

from ...assets.hf_folder import copy_tokenizer_files
from ...assets.teacher_shapes import TeacherShape


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
