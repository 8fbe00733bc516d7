"""Export a student or teacher checkpoint to a Hugging Face folder (for lm-evaluation-harness or as a teacher).

    python -m recipes.export_hf --checkpoint outputs/let_debug/checkpoint/step-200 \
        --flavor debugmodel --tokenizer assets/teacher_debug --out exports/let_debug
"""

import argparse

import torch

from let_components.export import export_student


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
