"""The shipped configs' teachers by folder name: their config.json as published, weights aside.

A dry run (let_components/dry_run.py) builds a teacher of this shape with random weights where the folder is not
there (a fresh clone, a laptop), so the config builds and steps at its real width, depth and vocabulary; the
benchmark's random teachers and the memory estimate read the same numbers (recipes/assets/teacher_shapes.py). Keys
are the trailing parts of the configs' `let.teacher_path`; values keep the keys that decide the module, its RoPE and
its tokenizer's special ids. Sources: the public config.json of HuggingFaceTB/SmolLM-135M, meta-llama/Llama-3.2-1B,
Qwen/Qwen3-0.6B and Qwen/Qwen2.5-0.5B; SmolLM2-135M-Instruct-Q4_1 is what recipes/assets/smollm2_teacher.py writes;
replication/teacher what recipes/studies/replicate.sh exports (the debug_teacher flavor, as assets/teacher_debug).
"""

import copy
from pathlib import Path
from typing import Any


def _llama(**numbers: Any) -> dict[str, Any]:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "attention_bias": False, "mlp_bias": False, **numbers}


def _qwen(model_type: str, architecture: str, **numbers: Any) -> dict[str, Any]:
    return {"architectures": [architecture], "model_type": model_type, "hidden_act": "silu",
            "use_sliding_window": False, "rope_scaling": None, **numbers}


TEACHER_CONFIGS: dict[str, dict[str, Any]] = {
    "SmolLM-135M": _llama(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        vocab_size=49152, rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, torch_dtype="float32",
    ),
    "SmolLM2-135M-Instruct-Q4_1": _llama(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        vocab_size=49152, rms_norm_eps=1e-5, rope_theta=100000.0, max_position_embeddings=8192,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16",
    ),
    "Llama-3.2-1B": _llama(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
        head_dim=64, vocab_size=128256, rms_norm_eps=1e-5, rope_theta=500000.0, max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
        tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001, torch_dtype="bfloat16",
    ),
    "Qwen3-0.6B": _qwen(
        "qwen3", "Qwen3ForCausalLM", hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936, rms_norm_eps=1e-6,
        rope_theta=1000000.0, max_position_embeddings=40960, max_window_layers=28, sliding_window=None,
        attention_bias=False, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
        torch_dtype="bfloat16",
    ),
    "Qwen2.5-0.5B": _qwen(
        "qwen2", "Qwen2ForCausalLM", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=32768, max_window_layers=24, sliding_window=32768, tie_word_embeddings=True,
        bos_token_id=151643, eos_token_id=151643, torch_dtype="bfloat16",
    ),
    "replication/teacher": _llama(
        hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
        vocab_size=4096, rms_norm_eps=1e-5, rope_theta=10000, max_position_embeddings=2048,
        tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, torch_dtype="float32",
    ),
}
"""Trailing parts of a teacher folder's path -> its config.json (a copy is handed out: callers may edit it)."""


def shipped_teacher(path: str | Path) -> tuple[str, dict[str, Any]] | None:
    """(name, config.json) of the table's teacher whose name the path ends with (e.g. ./assets/hf/Llama-3.2-1B,
    outputs/replication/teacher); None for any other folder."""
    parts = Path(path).parts
    for name, config in TEACHER_CONFIGS.items():
        wanted = Path(name).parts
        if parts[-len(wanted):] == wanted:
            return name, copy.deepcopy(config)
    return None
