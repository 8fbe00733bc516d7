"""Export a trained student (a torchtitan DCP checkpoint) as a Hugging Face Llama folder.

    python -m recipes.export_hf --checkpoint outputs/let_debug/checkpoint/step-200 \\
        --flavor debugmodel --tokenizer assets/teacher_debug --out exports/let_debug

Weights go through the student's TrainSpec state-dict adapter (torchtitan's llama3 HF mapping, LET-only
parameters dropped); config.json is written so `transformers.AutoModelForCausalLM` loads the same model.
Used for the project's tiny teacher and for downstream evaluation with lm-evaluation-harness.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torchtitan.models.llama3.model.args import TransformerModelArgs

from let_components.student import StudentStateDictAdapter, ffn_hidden_dim, student_args

from .hf_folder import copy_tokenizer_files, hf_llama_config


def student_hf_config(args: TransformerModelArgs, tokenizer_dir: Path, dtype: torch.dtype) -> dict:
    """config.json of a torchtitan llama3 student, with the tokenizer's bos/eos ids."""
    from torchtitan.components.tokenizer import HuggingFaceTokenizer

    tokenizer = HuggingFaceTokenizer(str(tokenizer_dir))
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
    (out / "config.json").write_text(json.dumps(student_hf_config(args, tokenizer_dir, dtype), indent=2) + "\n")
    copy_tokenizer_files(tokenizer_dir, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a torchtitan DCP folder, e.g. .../checkpoint/step-200")
    parser.add_argument("--flavor", required=True, help="student flavor the checkpoint was trained with")
    parser.add_argument("--tokenizer", required=True, help="folder with tokenizer.json (copied into --out)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seq-len", type=int, default=2048, help="max_position_embeddings in config.json")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    out = export_student(
        args.checkpoint, args.flavor, args.out, args.tokenizer, args.max_seq_len, getattr(torch, args.dtype)
    )
    print(f"exported {args.checkpoint} -> {out}")


if __name__ == "__main__":
    main()
