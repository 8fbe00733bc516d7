"""Reading what a torchtitan run leaves in its dump folder: TensorBoard scalars, LET's run record and what its
checkpoints hold.

One reader for the benchmark, the run comparison, the checkpoint tools and the tests, so every tool sees the same
numbers.
"""

import json
import math
from pathlib import Path
from typing import Any

from let_components.record import RUN_RECORD


def read_scalars(folder: str | Path, tags: tuple[str, ...] | list[str]) -> dict[str, dict[int, float]]:
    """tag -> {step: value} over every event file under `folder`, full precision; a later file (a resumed
    run) wins per step."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    values: dict[str, dict[int, float]] = {tag: {} for tag in tags}
    for events in sorted(Path(folder).rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={SCALARS: 0})
        accumulator.Reload()
        present = accumulator.Tags()["scalars"]
        for tag in tags:
            if tag in present:
                values[tag].update({e.step: e.value for e in accumulator.Scalars(tag)})
    return values


def read_run_record(folder: str | Path) -> dict[str, Any] | None:
    """The `[let]` values (and training.steps) a LET-trainer run recorded; None for runs made before the record."""
    path = Path(folder) / RUN_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
