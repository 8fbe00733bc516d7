"""Does student block k hold what the teacher knows, or only point its way? A linear read-out, scored by the teacher.

    python -m recipes.probes.knowledge_probe --checkpoint outputs/replication/let_s0/checkpoint/step-100 \\
        --config train_configs/replication_let.toml --teacher outputs/replication/teacher [--sequences 64] \\
        [--json out.json] [any config override, e.g. --validation.dataset_path outputs/replication/ood/ood.jsonl]

The logged LET cosine says block k's states point toward the teacher's; it does not say whether they carry the
teacher's knowledge. On held-out text (the first --sequences windows of the config's validation data, packed as
torchtitan's validator packs them), a ridge regression maps block k's states (and a constant) to the teacher's final
states (after its final norm). It is fitted on the first --fit-fraction of the windows and measured on the rest
(whole windows, so neighbouring positions are never split between the two):

- r2: 1 - residual / total sum of squares over all teacher channels, on the measured positions;
- mapped_bits_per_byte: the teacher's OWN LM head applied to the mapped states, against teacher_bits_per_byte
  (its head on its own states, the same positions): what of the teacher's next-token knowledge a linear read-out of
  block k recovers. The pre-registered reading (docs/results.md) compares LET's with its same-seed baseline's;
- chance_*: the same fit with the fitted rows shuffled (what a map learns from nothing: about the mean state);
  embedding_*: the same from the student's token embeddings (what token identity alone gives);
- cosine: the run's logged cosine (block k through the checkpoint's `let_projection`, or the teacher state
  interpolated to the student width); centred_cosine: the same after centring both sides per channel over the
  positions; mean_direction_cosine: the cosine of the two mean vectors. A cosine that vanishes when centred is
  one direction common to every token, not token-specific agreement.

Same tokenizer only (let.token_alignment = "same", the paper's setting and the replication's).
"""

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

from let_components.teacher import TeacherModel, teacher_source
from let_components.terms.alignment import alignment_loss
from let_components.tokens import token_alignment
from let_components.tokens.per_byte import bits_per_byte, lm_loss_sums, text_byte_lengths

from ..common import load_student, parse_probe, probe_parser, run_teacher

CHUNK = 8
"""Windows per forward and per LM-head pass: bounds the [chunk, seq_len, vocab] logits in memory."""


@dataclass(frozen=True)
class RidgeMap:
    """y ~ x @ weight + bias, in float64."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.double() @ self.weight + self.bias).to(x.dtype)


def fit_ridge(x: torch.Tensor, y: torch.Tensor, ridge: float) -> RidgeMap:
    """Ridge regression of [n, d_out] on [n, d_in] with an unpenalised constant, in float64.

    The penalty is `ridge` times the mean eigenvalue of the centred x^T x, so one value means the same at any
    width and scale of the states.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"fit_ridge: {x.shape[0]} rows against {y.shape[0]}: the rows must be the same positions")
    x, y = x.double(), y.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc
    penalty = ridge * gram.diagonal().mean() + torch.finfo(torch.float64).tiny
    weight = torch.linalg.solve(gram + penalty * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc)
    return RidgeMap(weight, y_mean - x_mean @ weight)


def r_squared(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """1 - SSE / SST over all channels together (SST around the target's per-channel mean): the share of the
    target's variance the prediction explains; 0 for the mean, negative when worse than it."""
    prediction, target = prediction.double(), target.double()
    residual = (target - prediction).square().sum()
    total = (target - target.mean(0)).square().sum()
    return (1 - residual / total).item()


def centred_cosine(student: torch.Tensor, teacher: torch.Tensor, align_corners: bool = True) -> dict[str, float]:
    """Mean cosine per position as the run logs it (alignment_loss: the teacher resized to the student's width when
    they differ), raw and after centring both sides per channel over the positions, and the cosine of the two mean
    vectors. [n, d_student] and [n, d_teacher]; resizing is linear, so centring before it equals centring after."""
    student, teacher = student.double(), teacher.double()

    def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
        return -alignment_loss(a, b, torch.ones(len(a), dtype=torch.bool), align_corners).item() / len(a)

    means = student.mean(0, keepdim=True), teacher.mean(0, keepdim=True)
    return {
        "cosine": mean_cosine(student, teacher),
        "centred_cosine": mean_cosine(student - means[0], teacher - means[1]),
        "mean_direction_cosine": mean_cosine(*means),
    }


def head_bits_per_byte(teacher: TeacherModel, states: torch.Tensor, labels: torch.Tensor,
                       byte_lengths: torch.Tensor) -> float:
    """Bits per byte of the teacher's LM head on [B, L, d_teacher] states (lm_loss_sums, special tokens left out)."""
    sums = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for first in range(0, states.shape[0], CHUNK):
            rows = slice(first, first + CHUNK)
            sums += lm_loss_sums(teacher.logits(states[rows].float()), labels[rows], byte_lengths).double()
    return bits_per_byte(sums[0].item(), sums[1].item())


def read_out(source: torch.Tensor, target: torch.Tensor, fit: int, ridge: float, teacher: TeacherModel,
             labels: torch.Tensor, byte_lengths: torch.Tensor) -> dict[str, float]:
    """Ridge from [B, L, d] `source` to [B, L, d_teacher] `target` on windows [:fit], R^2 and the teacher head's
    bits per byte on windows [fit:]."""
    ridge_map = fit_ridge(source[:fit].flatten(0, 1), target[:fit].flatten(0, 1), ridge)
    mapped = ridge_map(source[fit:])
    return {"r2": r_squared(mapped.flatten(0, 1), target[fit:].flatten(0, 1)),
            "bits_per_byte": head_bits_per_byte(teacher, mapped, labels[fit:], byte_lengths)}


def held_out_windows(job_config: Any, tokenizer: Any, sequences: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `sequences` [inputs], [labels] windows of the validation data, packed as torchtitan's validator
    packs them (one data-parallel rank)."""
    validation = job_config.validation
    dataset = HuggingFaceTextDataset(validation.dataset, validation.dataset_path, tokenizer, validation.seq_len)
    rows = []
    for input_dict, labels in dataset:
        rows.append((input_dict["input"], labels))
        if len(rows) == sequences:
            break
    if len(rows) < sequences:
        raise ValueError(f"--sequences {sequences}: validation.dataset_path={validation.dataset_path!r} holds only "
                         f"{len(rows)} windows of validation.seq_len={validation.seq_len}")
    return torch.stack([x for x, _ in rows]), torch.stack([y for _, y in rows])


@contextmanager
def capturing(modules: dict[str, torch.nn.Module]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Forward hooks keeping each module's output per forward (the raw block state, before any projection)."""
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    handles = [module.register_forward_hook(lambda m, a, out, name=name: captured[name].append(out))
               for name, module in modules.items()]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def check_same_tokenizer(job_config: Any) -> None:
    alignment = token_alignment(job_config)
    if not alignment.one_to_one:
        raise ValueError(f"{alignment.describe(job_config)}: the knowledge probe reads the teacher's head at the "
                         "student's positions, which needs one tokenizer; valid: let.token_alignment = 'same'")


def forward_states(student: torch.nn.Module, teacher: TeacherModel, student_layer: int, inputs: torch.Tensor,
                   labels: torch.Tensor, byte_lengths: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor,
                                                                               float]:
    """{"block": block k's output, "embedding": the token embeddings}, the teacher's final states, and the student's
    own bits per byte on `labels` (IGNORE_INDEX where not counted), CHUNK windows at a time."""
    sums = torch.zeros(3, dtype=torch.float64)
    teacher_states = []
    hooks = {"embedding": student.tok_embeddings, "block": student.layers[str(student_layer)]}
    with torch.no_grad(), capturing(hooks) as captured:
        for first in range(0, len(inputs), CHUNK):
            rows = slice(first, first + CHUNK)
            sums += lm_loss_sums(student(inputs[rows]), labels[rows], byte_lengths).double()
            teacher_states.append(teacher(inputs[rows]))
    student_states = {name: torch.cat(outputs) for name, outputs in captured.items()}
    return student_states, torch.cat(teacher_states), bits_per_byte(sums[0].item(), sums[1].item())


def shuffled_fit(states: torch.Tensor, fit: int, seed: int) -> torch.Tensor:
    """[B, L, d] states whose positions in windows [:fit] are permuted among themselves: the chance control's fit
    learns from pairs that do not belong together; the measured windows stay as they are."""
    fitted = states[:fit].flatten(0, 1)
    order = torch.randperm(len(fitted), generator=torch.Generator().manual_seed(seed))
    return torch.cat([fitted[order].view_as(states[:fit]), states[fit:]])


def knowledge_probe(job_config: Any, checkpoint: Path, sequences: int, fit_fraction: float = 0.5,
                    ridge: float = 1e-3, seed: int = 0) -> dict[str, Any]:
    """Every number of the module docstring for one checkpoint."""
    check_same_tokenizer(job_config)
    fit = int(sequences * fit_fraction)
    if not 0 < fit < sequences:
        raise ValueError(f"--fit-fraction {fit_fraction} of --sequences {sequences} leaves {fit} windows to fit and "
                         f"{sequences - fit} to measure; both must be at least 1")
    let = job_config.let
    source = teacher_source(job_config)
    tokenizer = source.tokenizer()
    byte_lengths = torch.from_numpy(text_byte_lengths(tokenizer, "let.teacher_path"))
    inputs, labels = held_out_windows(job_config, tokenizer, sequences)
    student = load_student(job_config, checkpoint)
    teacher = run_teacher(job_config, max_seq_len=inputs.shape[1], layer=-1)  # its final states, for its own head
    measured_labels = labels.clone()
    measured_labels[:fit] = IGNORE_INDEX  # the student's own loss on the measured windows only
    states, target, student_bpb = forward_states(student, teacher, let.student_layer, inputs, measured_labels,
                                                 byte_lengths)
    block = states["block"]
    readouts = {name: read_out(source, target, fit, ridge, teacher, labels, byte_lengths)
                for name, source in (("block", block), ("chance", shuffled_fit(block, fit, seed)),
                                     ("embedding", states["embedding"]))}
    with torch.no_grad():
        mapped = student.let_projection(block[fit:]) if student.let_projection is not None else block[fit:]
    cosines = centred_cosine(mapped.flatten(0, 1), target[fit:].flatten(0, 1), let.interpolate_align_corners)
    return {
        "checkpoint": str(checkpoint), "teacher": source.path, "student_layer": let.student_layer,
        "data": str(job_config.validation.dataset_path or job_config.validation.dataset),
        "windows_fit": fit, "windows_measured": sequences - fit, "tokens_measured": labels[fit:].numel(),
        "ridge": ridge,
        "r2": readouts["block"]["r2"], "mapped_bits_per_byte": readouts["block"]["bits_per_byte"],
        "teacher_bits_per_byte": head_bits_per_byte(teacher, target[fit:], labels[fit:], byte_lengths),
        "student_bits_per_byte": student_bpb,
        **{f"{name}_{key}": readouts[name][key] for name in ("chance", "embedding") for key in ("r2", "bits_per_byte")},
        **cosines,
        "cosine_map": "let_projection" if student.let_projection is not None else "interpolate",
    }


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, Any]:
    """The tool's arguments, and the run's JobConfig: the TOML plus any config overrides among the arguments."""
    parser = probe_parser(__doc__, checkpoint=True, teacher=True)
    parser.add_argument("--sequences", type=int, default=64, help="first N validation windows (default 64)")
    parser.add_argument("--fit-fraction", type=float, default=0.5,
                        help="share of the windows the map is fitted on; the rest are measured (default 0.5)")
    parser.add_argument("--ridge", type=float, default=1e-3,
                        help="penalty as a fraction of the mean eigenvalue of the states' covariance (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="the chance control's shuffle (default 0)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    return parse_probe(parser, argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, job_config = parse(list(sys.argv[1:] if argv is None else argv))
    try:
        result = knowledge_probe(job_config, args.checkpoint, args.sequences, args.fit_fraction, args.ridge,
                                 args.seed)
    except ValueError as error:
        sys.exit(str(error))
    print(
        f"{args.checkpoint}: block {result['student_layer']} -> teacher on {result['tokens_measured']:,} held-out "
        f"tokens: R^2 {result['r2']:.4f} (chance {result['chance_r2']:.4f}, embedding {result['embedding_r2']:.4f}); "
        f"teacher head {result['mapped_bits_per_byte']:.4f} bits/byte on the map, "
        f"{result['teacher_bits_per_byte']:.4f} on its own states; cosine {result['cosine']:.4f}, "
        f"centred {result['centred_cosine']:.4f}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
