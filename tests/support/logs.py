"""Reading what a training run logged: the console's [LET] step lines and its TensorBoard scalars."""

import re
from collections.abc import Iterable
from pathlib import Path

from recipes.reports.run_logs import read_scalars


def let_lines(log: str) -> dict[int, dict[str, float]]:
    """step -> {lambda, alignment_loss, cosine} from the console's [LET] step lines."""
    number = r":\s*([\d.e+-]+)\s*"
    pattern = re.compile(rf"\[LET\] step{number}lambda{number}alignment_loss{number}cosine{number}")
    return {int(m[1]): {"lambda": float(m[2]), "alignment_loss": float(m[3]), "cosine": float(m[4])}
            for m in pattern.finditer(log)}


def distillation_lines(log: str) -> dict[int, dict[str, float]]:
    """step -> {lambda, distillation_loss, top1_agreement} from the console's [LET] step lines of signal = "logits"."""
    number = r":\s*([\d.e+-]+)\s*"
    pattern = re.compile(rf"\[LET\] step{number}lambda{number}distillation_loss{number}top1_agreement{number}")
    return {int(m[1]): {"lambda": float(m[2]), "distillation_loss": float(m[3]), "top1_agreement": float(m[4])}
            for m in pattern.finditer(log)}


def tb_scalars(folder: Path, tag: str) -> dict[int, float]:
    """step -> value of one TensorBoard scalar written under `folder` (full float precision)."""
    return read_scalars(folder, (tag,))[tag]


def assert_same_scalars(
    expected_run: Path, run: Path, tags: Iterable[str], steps: Iterable[int], tolerance: float = 1e-6
) -> None:
    """Each TensorBoard scalar of `tags` differs between two runs by at most `tolerance` at every one of `steps`
    (both runs must have logged it there)."""
    steps = list(steps)
    for tag in tags:
        expected, got = tb_scalars(expected_run, tag), tb_scalars(run, tag)
        for step in steps:
            assert step in expected and step in got, (tag, step, "not logged")
            assert abs(expected[step] - got[step]) <= tolerance, (tag, step, expected[step], got[step])
