"""Export a trained student (a torchtitan DCP checkpoint) as a Hugging Face Llama or Qwen3 folder.

    python -m recipes.reports.export_hf --checkpoint outputs/let_debug/checkpoint/step-200 \\
        --flavor debugmodel --tokenizer assets/teacher_debug --out exports/let_debug
    python -m recipes.reports.export_hf --model let_qwen3 --checkpoint ... --flavor debugmodel --tokenizer ... --out ...

Weights go through the student's TrainSpec state-dict adapter (torchtitan's llama3 / qwen3 HF mapping, LET-only
parameters dropped); config.json is written so `transformers.AutoModelForCausalLM` loads the same model.
Used for the project's tiny teacher and for downstream evaluation with lm-evaluation-harness. The MoE student
(let_deepseek_v3) is refused: its HF config (routing groups, scaling, dense-layer count) has no tested mapping here.
"""

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torchtitan.models.llama3.model.args import TransformerModelArgs
from torchtitan.models.qwen3.model.args import Qwen3ModelArgs
from torchtitan.protocols.train_spec import get_train_spec

import let_components  # noqa: F401  (registers the student specs)
from let_components.student import ffn_hidden_dim
from let_components.tokens.tokenizers import load_tokenizer

from ..assets.hf_folder import copy_tokenizer_files, hf_llama_config
from ..common import checkpoint_metadata, student_vocab_size


def student_hf_config(args: TransformerModelArgs, tokenizer_dir: Path, dtype: torch.dtype) -> dict:
    """config.json of a torchtitan llama3 student, with the tokenizer's bos/eos ids."""
    tokenizer = load_tokenizer(tokenizer_dir)
    scaling = args.rope_scaling_args
    rope_scaling = None if scaling.scaling_factor == 1.0 else {
        "rope_type": "llama3",
        "factor": scaling.scaling_factor,
        "low_freq_factor": scaling.low_freq_factor,
        "high_freq_factor": scaling.high_freq_factor,
        "original_max_position_embeddings": scaling.original_max_position_embeddings,
    }
    return hf_llama_config(
        hidden_size=args.dim, intermediate_size=ffn_hidden_dim(args), num_hidden_layers=args.n_layers,
        num_attention_heads=args.n_heads, num_key_value_heads=args.n_kv_heads or args.n_heads,
        vocab_size=args.vocab_size, rms_norm_eps=args.norm_eps, rope_theta=args.rope_theta,
        max_position_embeddings=args.max_seq_len, rope_scaling=rope_scaling,
        dtype=str(dtype).removeprefix("torch."), bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
    )


def qwen3_student_hf_config(args: Qwen3ModelArgs, tokenizer_dir: Path, dtype: torch.dtype) -> dict[str, Any]:
    """config.json of a torchtitan qwen3 student (transformers' Qwen3Config keys, 4.x and 5.x read them)."""
    tokenizer = load_tokenizer(tokenizer_dir)
    return {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": args.dim,
        "intermediate_size": args.hidden_dim, "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads, "num_key_value_heads": args.n_kv_heads, "head_dim": args.head_dim,
        "vocab_size": args.vocab_size, "rms_norm_eps": args.norm_eps, "rope_theta": args.rope_theta,
        "max_position_embeddings": args.max_seq_len, "hidden_act": "silu", "attention_bias": False,
        "tie_word_embeddings": args.enable_weight_tying, "use_sliding_window": False,
        "torch_dtype": str(dtype).removeprefix("torch."), "bos_token_id": tokenizer.bos_id,
        "eos_token_id": tokenizer.eos_id,
    }


HF_CONFIGS: dict[str, Callable[[Any, Path, torch.dtype], dict[str, Any]]] = {
    "let_llama": student_hf_config,
    "let_qwen3": qwen3_student_hf_config,
}
"""Student specs with an HF export: the spec's own state-dict adapter plus this config.json writer."""


def export_student(
    checkpoint: str | Path,
    flavor: str,
    out: str | Path,
    tokenizer_dir: str | Path,
    max_seq_len: int = 2048,
    dtype: torch.dtype = torch.float32,
    model: str = "let_llama",
) -> Path:
    """Write config.json, model.safetensors and the tokenizer files of `checkpoint` into `out`."""
    if model not in HF_CONFIGS:
        raise ValueError(f"--model {model}: HF export covers {', '.join(HF_CONFIGS)}; the MoE student is not exported")
    checkpoint, out, tokenizer_dir = Path(checkpoint), Path(out), Path(tokenizer_dir)
    spec = get_train_spec(model)
    metadata = checkpoint_metadata(checkpoint)
    args = dataclasses.replace(
        spec.model_args[flavor], vocab_size=student_vocab_size(metadata), max_seq_len=max_seq_len
    )
    # Only the model's tensors are read, whether the checkpoint is model-only or full.
    state_dict = {
        key: torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
        for key, meta in metadata.items()
        if key.startswith(("tok_embeddings.", "layers.", "norm.", "output."))
    }
    dcp.load(state_dict, checkpoint_id=str(checkpoint))
    hf_state_dict = spec.state_dict_adapter(args, None).to_hf(state_dict)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in hf_state_dict.items()}, out / "model.safetensors",
              metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(HF_CONFIGS[model](args, tokenizer_dir, dtype), indent=2) + "\n")
    copy_tokenizer_files(tokenizer_dir, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="let_llama", choices=sorted(HF_CONFIGS), help="student spec ([model] name)")
    parser.add_argument("--checkpoint", required=True, help="a torchtitan DCP folder, e.g. .../checkpoint/step-200")
    parser.add_argument("--flavor", required=True, help="student flavor the checkpoint was trained with")
    parser.add_argument("--tokenizer", required=True, help="folder with tokenizer.json (copied into --out)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seq-len", type=int, default=2048, help="max_position_embeddings in config.json")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    out = export_student(
        args.checkpoint, args.flavor, args.out, args.tokenizer, args.max_seq_len, getattr(torch, args.dtype), args.model
    )
    print(f"exported {args.checkpoint} -> {out}")


if __name__ == "__main__":
    main()
