"""How similar are a student's block-k states to the teacher's final states? Linear CKA, basis-free.

    python -m recipes.probes.similarity --checkpoint outputs/init_study/let_s0/checkpoint/step-100 \\
        --config train_configs/replication_let.toml --teacher outputs/replication/teacher [--sequences 16] \\
        [--json out.json] [any config override, e.g. --let.student_layer 2]
    python -m recipes.probes.similarity --summary outputs/replication/init_study/similarity [--plot cka.png]

The logged LET cosine measures alignment in one fixed basis (the interpolated teacher vector, or the learned
projection's); linear CKA (Kornblith et al., ICML 2019) compares the two sets of token states up to any rotation and
isotropic scaling, at different widths, so "did the representations align" has an answer for baselines too.
Both are computed on a FIXED batch: the first `--sequences` sequences of the config's validation dataset, packed
and tokenized as torchtitan's validator does with the run's tokenizer (and, for a run aligned by bytes, read by the
teacher in its own tokenizer, each student position paired with its teacher position as in training). The cosine
is the run's own: through the checkpoint's `let_projection` when it has one, else the teacher state interpolated to
the student width.
"""

import argparse
import dataclasses
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torchtitan.protocols.train_spec import get_train_spec

from let_components.teacher import teacher_source
from let_components.terms.alignment import alignment_loss
from let_components.tokens import token_alignment

from ..common import load_student, parse_probe, probe_parser, run_teacher


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between [n, d1] and [n, d2] (rows: the same n examples; widths may differ), in float64.

    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc: the feature-space form of
    HSIC(XX^T, YY^T) normalised, which costs d1 x d2 instead of n x n. 1 for X against itself or any orthogonal
    transform and isotropic scaling of it; 0 when the two are uncorrelated.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka: {x.shape[0]} rows against {y.shape[0]}: the rows must be the same examples")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return (cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y))).item()


def fixed_batch(job_config: Any, tokenizer: Any, sequences: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The first `sequences` (inputs, labels) rows of the validation dataset, in order (one data-parallel rank), and
    the teacher's side of them: its own ids and, per student position, the teacher position paired with it when
    the run aligns by bytes (empty otherwise)."""
    rows: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []
    for input_dict, labels in validation_windows(job_config, tokenizer):
        rows.append((input_dict, labels))
        if len(rows) == sequences:
            break
    if len(rows) < sequences:
        raise ValueError(f"--sequences {sequences}: the validation dataset has only {len(rows)}")
    inputs = torch.stack([input_dict["input"] for input_dict, _ in rows])
    teacher_batch = {key: torch.stack([input_dict[key] for input_dict, _ in rows])
                     for key in rows[0][0] if key != "input"}
    return inputs, torch.stack([labels for _, labels in rows]), teacher_batch


def validation_windows(job_config: Any, tokenizer: Any):
    """The validation dataset's windows as torchtitan's validator packs them, with whatever the run's token
    alignment adds (the teacher's side when it aligns by bytes)."""
    validation = job_config.validation
    return token_alignment(job_config).text_dataset(job_config, tokenizer, validation.dataset,
                                                    validation.dataset_path, validation.seq_len,
                                                    teacher_source(job_config))


def similarity(job_config: Any, checkpoint: Path, sequences: int) -> dict[str, Any]:
    """CKA(student block k, teacher) and the run's mean cosine on the fixed batch (positions paired by bytes when
    the run aligns by bytes; positions without a teacher token left out)."""
    let, alignment = job_config.let, token_alignment(job_config)
    spec = get_train_spec(job_config.model.name)
    inputs, labels, teacher_batch = fixed_batch(job_config, spec.build_tokenizer_fn(job_config), sequences)
    student = load_student(job_config, checkpoint)
    # the run's own map: whatever its token alignment pairs (the probe runs the teacher without document masks)
    token_map = alignment.build_map(job_config, student, dataclasses.replace(student.model_args, attn_type="sdpa"),
                                    teacher_source(job_config))
    teacher_inputs, _ = token_map.teacher_inputs(inputs, teacher_batch, None)
    teacher = run_teacher(job_config, max_seq_len=teacher_inputs.shape[1])
    # a plain hook, not BlockCapture: CKA needs block k's raw state, before the run's projection
    captured: list[torch.Tensor] = []
    handle = student.layers[str(let.student_layer)].register_forward_hook(lambda m, a, out: captured.append(out))
    with torch.no_grad():
        student(inputs)
        handle.remove()
        student_hidden = captured[0]
        teacher_hidden = token_map.to_student(teacher(teacher_inputs), teacher_batch)
        mapped = student.let_projection(student_hidden) if student.let_projection is not None else student_hidden
        valid = token_map.valid(labels, teacher_batch)
        term = alignment_loss(mapped, teacher_hidden, valid, let.interpolate_align_corners)
        cosine = -term.item() / valid.sum().item()
        cka = linear_cka(student_hidden[valid], teacher_hidden[valid])
    return {
        "checkpoint": str(checkpoint), "student_layer": let.student_layer, "teacher_layer": let.teacher_layer,
        "tokens": int(valid.sum()), "linear_cka": cka, "cosine": cosine,
        "cosine_map": "let_projection" if student.let_projection is not None else "interpolate",
        "token_alignment": alignment.describe(job_config),
    }


RESULT_NAME = re.compile(r"(?P<run>.+)_step(?P<step>\d+)\.json")
"""What recipes/studies/study_init.sh names each measurement: RUN_stepN.json."""


def read_results(folder: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """{run: {step: result}} from the RUN_stepN.json files in `folder`."""
    runs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(folder.glob("*_step*.json")):
        match = RESULT_NAME.fullmatch(path.name)
        if match:
            runs[match["run"]][int(match["step"])] = json.loads(path.read_text())
    if not runs:
        raise ValueError(f"--summary {folder}: no RUN_stepN.json results there")
    return dict(runs)


def summary_table(runs: dict[str, dict[int, dict[str, Any]]]) -> str:
    """One row per run, one column per step: 'CKA / cosine'."""
    steps = sorted({step for results in runs.values() for step in results})
    lines = ["| run | " + " | ".join(f"step {s}: CKA / cos" for s in steps) + " |",
             "| --- |" + " --- |" * len(steps)]
    for run, results in sorted(runs.items()):
        cells = [f"{results[s]['linear_cka']:.3f} / {results[s]['cosine']:+.3f}" if s in results else "-"
                 for s in steps]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_plot(runs: dict[str, dict[int, dict[str, Any]]], path: Path) -> Path:
    """Linear CKA and cosine against step; baselines dashed, LET runs solid."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for index, (run, results) in enumerate(sorted(runs.items())):
        steps = sorted(results)
        style = "--" if run.startswith("baseline") else "-"
        for ax, key in zip(axes, ("linear_cka", "cosine"), strict=True):
            ax.plot(steps, [results[s][key] for s in steps], style, marker="o", markersize=3,
                    color=f"C{index % 10}", label=run)
    for ax, title in zip(axes, ("linear CKA(student block k, teacher final)", "cosine (the run's map)"),
                         strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, Any]:
    """The tool's arguments, and the run's JobConfig: the TOML plus any config overrides among the arguments."""
    parser = probe_parser(__doc__, checkpoint=True, teacher=True)
    parser.add_argument("--sequences", type=int, default=16, help="first N validation sequences (default 16)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    return parse_probe(parser, argv)


def summarize(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(description="table (and plot) of a folder of RUN_stepN.json results")
    parser.add_argument("--summary", required=True, type=Path, help="folder of RUN_stepN.json files")
    parser.add_argument("--plot", type=Path, help="also draw CKA and cosine against step here (needs matplotlib)")
    args = parser.parse_args(argv)
    runs = read_results(args.summary)
    table = summary_table(runs)
    print(table, end="")
    if args.plot:
        print(f"wrote {summary_plot(runs, args.plot)}")
    return table


def main(argv: list[str] | None = None) -> dict[str, Any] | str:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--summary" or a.startswith("--summary=") for a in argv):
        return summarize(argv)
    args, job_config = parse(argv)
    result = similarity(job_config, args.checkpoint, args.sequences)
    print(
        f"{args.checkpoint}: block {result['student_layer']} vs teacher layer {result['teacher_layer']} on "
        f"{result['tokens']:,} tokens: linear CKA {result['linear_cka']:.4f}, "
        f"cosine {result['cosine']:.4f} ({result['cosine_map']})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
