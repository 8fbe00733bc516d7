"""Export a trained student (a torchtitan DCP checkpoint) as a Hugging Face Llama folder.

Weights go through the student's TrainSpec state-dict adapter (torchtitan's llama3 HF mapping, LET-only
parameters dropped); config.json is written so `transformers.AutoModelForCausalLM` loads the same model.
Used for the project's tiny teacher and for downstream evaluation with lm-evaluation-harness.
"""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file

from .student import StudentStateDictAdapter, ffn_hidden_dim, student_args

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")


def hf_llama_config(args, bos_id: int | None, eos_id: int | None, dtype: torch.dtype) -> dict[str, Any]:
    """transformers LlamaConfig fields for torchtitan llama3 args."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.dim,
        "intermediate_size": ffn_hidden_dim(args),
        "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads,
        "num_key_value_heads": args.n_kv_heads or args.n_heads,
        "vocab_size": args.vocab_size,
        "rms_norm_eps": args.norm_eps,
        "rope_theta": args.rope_theta,
        "max_position_embeddings": args.max_seq_len,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": str(dtype).removeprefix("torch."),
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
    }
    scaling = args.rope_scaling_args
    if scaling.scaling_factor != 1.0:
        config["rope_scaling"] = {
            "rope_type": "llama3",
            "factor": scaling.scaling_factor,
            "low_freq_factor": scaling.low_freq_factor,
            "high_freq_factor": scaling.high_freq_factor,
            "original_max_position_embeddings": scaling.original_max_position_embeddings,
        }
    return config


def _special_ids(tokenizer_dir: Path) -> tuple[int | None, int | None]:
    from torchtitan.components.tokenizer import HuggingFaceTokenizer

    tokenizer = HuggingFaceTokenizer(str(tokenizer_dir))
    return tokenizer.bos_id, tokenizer.eos_id


def export_student(
    checkpoint: str | Path,
    flavor: str,
    out: str | Path,
    tokenizer_dir: str | Path,
    max_seq_len: int = 2048,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write config.json, model.safetensors and the tokenizer files of `checkpoint` into `out`."""
    checkpoint, out, tokenizer_dir = Path(checkpoint), Path(out), Path(tokenizer_dir)
    metadata = dcp.FileSystemReader(str(checkpoint)).read_metadata().state_dict_metadata
    vocab_size = metadata["tok_embeddings.weight"].size[0]
    args = dataclasses.replace(student_args[flavor], vocab_size=vocab_size, max_seq_len=max_seq_len)
    # Only the model's tensors are read, whether the checkpoint is model-only or full.
    state_dict = {
        key: torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
        for key, meta in metadata.items()
        if key.startswith(("tok_embeddings.", "layers.", "norm.", "output."))
    }
    dcp.load(state_dict, checkpoint_id=str(checkpoint))
    hf_state_dict = StudentStateDictAdapter(args, None).to_hf(state_dict)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in hf_state_dict.items()}, out / "model.safetensors",
              metadata={"format": "pt"})
    bos_id, eos_id = _special_ids(tokenizer_dir)
    (out / "config.json").write_text(json.dumps(hf_llama_config(args, bos_id, eos_id, dtype), indent=2) + "\n")
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, out / name)
    return out
