"""Downstream accuracy of an exported student with EleutherAI's lm-evaluation-harness (the paper's 9 tasks, 1-shot).

    python -m recipes.reports.export_hf --checkpoint outputs/let_debug/checkpoint/step-200 \
        --flavor debugmodel --tokenizer assets/teacher_debug --out exports/let_debug
    python -m recipes.reports.evaluate --model exports/let_debug --out outputs/eval/let_debug
    # a task defined by local YAML + data files (no hub access needed)
    python -m recipes.reports.evaluate --model exports/let_debug --tasks let_tiny_mc \
        --include-path tests/assets/lm_eval_task --out outputs/eval/tiny

Runs lm_eval.simple_evaluate with the "hf" model (transformers loads the exported folder) and writes
results.md and results.json (per-task acc / acc_norm with standard errors, and the unweighted average accuracy
the paper reports) into --out.
Needs `pip install "lm_eval[hf]"` (the dev extra); the paper's tasks are downloaded from the Hugging Face hub
on first use (or read from its cache, e.g. with HF_DATASETS_OFFLINE=1).
"""

import argparse
import json
from pathlib import Path
from typing import Any

# HellaSwag, WinoGrande, LAMBADA, OpenBookQA, ARC-e, ARC-c, PIQA, SciQ, BoolQ: the paper's one-shot average
PAPER_TASKS = (
    "hellaswag", "winogrande", "lambada_openai", "openbookqa", "arc_easy", "arc_challenge", "piqa", "sciq", "boolq",
)
METRICS = ("acc", "acc_norm")


def task_manager(tasks: list[str], include_path: str | None):
    """lm-eval's task index; only the local folder when it defines every task (indexing the built-ins takes ~8 s)."""
    from lm_eval.tasks import TaskManager

    if include_path is not None:
        local = TaskManager(include_path=include_path, include_defaults=False)
        if set(tasks) <= set(local.all_tasks) | set(local.all_groups) | set(local.all_tags):
            return local
    return TaskManager(include_path=include_path)


def evaluate(
    model: str | Path,
    tasks: list[str],
    num_fewshot: int = 1,
    include_path: str | None = None,
    batch_size: int | str = 8,
    device: str = "cpu",
    dtype: str = "float32",
    limit: int | None = None,
) -> dict[str, Any]:
    """lm-eval's full results dict for a Hugging Face model folder."""
    import lm_eval

    return lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model), "dtype": dtype},
        tasks=tasks,
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        limit=limit,
        task_manager=task_manager(tasks, include_path),
        log_samples=False,
    )


def accuracy_rows(results: dict[str, Any], tasks: list[str]) -> list[dict[str, Any]]:
    """Per task: acc and acc_norm with standard errors (None where a task has no such metric)."""
    per_task = results["results"]
    rows = []
    for task in [t for t in tasks if t in per_task] + [t for t in per_task if t not in tasks]:
        metrics = per_task[task]
        row: dict[str, Any] = {"task": task, "samples": results.get("n-samples", {}).get(task, {}).get("effective")}
        for metric in METRICS:
            row[metric] = metrics.get(f"{metric},none")
            stderr = metrics.get(f"{metric}_stderr,none")
            row[f"{metric}_stderr"] = stderr if isinstance(stderr, float) else None
        rows.append(row)
    return rows


def average(rows: list[dict[str, Any]], metric: str = "acc") -> float | None:
    """Unweighted mean over tasks, as the paper averages its nine accuracies."""
    values = [row[metric] for row in rows if row[metric] is not None]
    return sum(values) / len(values) if values else None


def _percent(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" + (f" ± {100 * stderr:.1f}" if stderr is not None else "")


def markdown(rows: list[dict[str, Any]], model: str, num_fewshot: int) -> str:
    lines = [
        f"lm-evaluation-harness, {num_fewshot}-shot, model {model} (accuracy in %, ± standard error)",
        "",
        "| task | samples | acc | acc_norm |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = [row["task"], str(row["samples"] or "-"), _percent(row["acc"], row["acc_stderr"]),
                 _percent(row["acc_norm"], row["acc_norm_stderr"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"| **average** | | **{_percent(average(rows))}** | {_percent(average(rows, 'acc_norm'))} |")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], tasks: list[str], model: str, num_fewshot: int, out: Path) -> str:
    """results.md (the table) and results.json (the table, the average and lm-eval's own results) in `out`."""
    from lm_eval.utils import handle_non_serializable

    rows = accuracy_rows(results, tasks)
    table = markdown(rows, model, num_fewshot)
    report = {
        "model": model,
        "num_fewshot": num_fewshot,
        "tasks": rows,
        "average_acc": average(rows),
        "average_acc_norm": average(rows, "acc_norm"),
        "lm_eval_version": results.get("lm_eval_version"),
        "lm_eval": {key: results.get(key) for key in ("results", "versions", "n-shot", "n-samples", "config")},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(report, indent=2, default=handle_non_serializable) + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an exported Hugging Face folder (recipes.reports.export_hf)")
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
