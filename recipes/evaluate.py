"""Downstream accuracy of an exported student with EleutherAI's lm-evaluation-harness (the paper's 9 tasks, 1-shot).

    python -m recipes.export_hf --checkpoint outputs/let_debug/checkpoint/step-200 \
        --flavor debugmodel --tokenizer assets/teacher_debug --out exports/let_debug
    python -m recipes.evaluate --model exports/let_debug --out outputs/eval/let_debug
    # a task defined by local YAML + data files (no hub access needed)
    python -m recipes.evaluate --model exports/let_debug --tasks let_tiny_mc \
        --include-path tests/assets/lm_eval_task --out outputs/eval/tiny

Runs lm_eval.simple_evaluate with the "hf" model (transformers loads the exported folder) and writes
results.md and results.json (per-task acc / acc_norm with standard errors, and the average acc) into --out.
Needs `pip install "lm_eval[hf]"` (the dev extra); the paper's tasks are downloaded from the Hugging Face hub
on first use (or read from its cache, e.g. with HF_DATASETS_OFFLINE=1).
"""

import argparse
from pathlib import Path

from let_components.evaluate import PAPER_TASKS, evaluate, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an exported Hugging Face folder (recipes.export_hf)")
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS), help="comma-separated lm-eval task names")
    parser.add_argument("--num-fewshot", type=int, default=1)
    parser.add_argument("--include-path", help="a folder of custom lm-eval task YAMLs")
    parser.add_argument("--out", help="folder for results.md and results.json (default outputs/eval/<model name>)")
    parser.add_argument("--batch-size", default="8", help="an integer or 'auto'")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--limit", type=int, help="at most this many documents per task (smoke tests)")
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    batch_size = int(args.batch_size) if args.batch_size.isdigit() else args.batch_size
    out = Path(args.out) if args.out else Path("outputs/eval") / Path(args.model).name
    results = evaluate(
        args.model, tasks, args.num_fewshot, args.include_path, batch_size, args.device, args.dtype, args.limit
    )
    print(write_results(results, tasks, args.model, args.num_fewshot, out))
    print(f"wrote {out}/results.md, results.json")


if __name__ == "__main__":
    main()
