"""Writing Hugging Face-format model folders: the Llama config.json and the tokenizer files.

Shared by the HF export, the benchmark's random teachers and the tests' tiny checkpoints.
"""

import shutil
from pathlib import Path
from typing import Any

from let_components.tokens.tokenizers import TOKENIZER_FILES


def copy_tokenizer_files(source: str | Path, target: str | Path) -> list[str]:
    """Copy whichever tokenizer files `source` has into `target`; returns their names."""
    source, target = Path(source), Path(target)
    copied = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    for name in copied:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, target / name)
    return copied


def hf_llama_config(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    num_key_value_heads: int,
    vocab_size: int,
    rms_norm_eps: float,
    rope_theta: float,
    max_position_embeddings: int,
    tie_word_embeddings: bool = False,
    rope_scaling: dict[str, Any] | None = None,
    dtype: str = "float32",
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> dict[str, Any]:
    """transformers LlamaConfig fields (both 4.x and 5.x read them); no rope_scaling key means plain RoPE."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "vocab_size": vocab_size,
        "rms_norm_eps": rms_norm_eps,
        "rope_theta": rope_theta,
        "max_position_embeddings": max_position_embeddings,
        "hidden_act": "silu",
        "tie_word_embeddings": tie_word_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": dtype,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
    }
    if rope_scaling is not None:
        config["rope_scaling"] = rope_scaling
    return config
