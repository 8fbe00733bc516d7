"""Reading runs for the comparison: validation curve, tokens, step times and the alignment phase of a dump folder."""

import json
from pathlib import Path
from typing import Any

from let_components.record import DECISION, RUN_RECORD
from let_components.teacher import TEACHER_CONFIG_COPY

from ..run_logs import read_run_record, read_scalars
from .analysis import (
    LAMBDA,
    STEP_TIME,
    TOKENS,
    VALIDATION_LOSS,
    RunMetrics,
    cumulative_seconds,
    infer_log_freq,
    stop_step_from_lambda,
)


def saved_job_config(folder: Path) -> dict[str, Any] | None:
    """The JobConfig torchtitan saved with `job.save_config_file`, if the run did."""
    for path in sorted(folder.glob("*.json")):
        if path.name in (TEACHER_CONFIG_COPY, RUN_RECORD):
            continue
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and "job" in config and "metrics" in config:
            return config
    return None


def read_run(path: str | Path, name: str | None = None) -> RunMetrics:
    folder = Path(path)
    scalars = read_scalars(folder, (VALIDATION_LOSS, TOKENS, STEP_TIME, LAMBDA))
    if not scalars[VALIDATION_LOSS]:
        raise ValueError(
            f"{folder}: no '{VALIDATION_LOSS}' in its TensorBoard events; the run needs [validation] enable = true "
            "and [metrics] enable_tensorboard = true"
        )
    config = saved_job_config(folder) or {}
    log_freq = config.get("metrics", {}).get("log_freq") or infer_log_freq(list(scalars[STEP_TIME]))
    let = read_run_record(folder) or config.get("let")
    stop_step = teaching_steps(let) if let else stop_step_from_lambda(scalars[LAMBDA])
    tokens = sorted(scalars[TOKENS].items())
    return RunMetrics(
        name=name or folder.name,
        validation=sorted(scalars[VALIDATION_LOSS].items()),
        tokens=[(0.0, 0.0), *tokens] if tokens else [],
        seconds=cumulative_seconds(scalars[STEP_TIME], log_freq) if scalars[STEP_TIME] else [],
        stop_step=stop_step,
        path=str(folder),
    )


def teaching_steps(let: dict) -> int | None:
    """The last step the teacher taught: stop_step, or the step a caught-up rule decided (the run record's
    stop_decision); None for a baseline."""
    if not let.get("enable"):
        return None
    return (let.get(DECISION) or {}).get("step", let["stop_step"])


def parse_group(spec: str) -> tuple[str | None, list[str]]:
    """'NAME=PATH[,PATH...]' or 'PATH[,PATH...]' -> (NAME or None, paths); several paths are seeds."""
    name, _, paths = spec.partition("=") if "=" in spec else (None, "", spec)
    return name or None, [p for p in paths.split(",") if p]


def read_groups(specs: list[str]) -> dict[str, list[RunMetrics]]:
    """One group per spec, named NAME or after its first folder."""
    groups: dict[str, list[RunMetrics]] = {}
    for spec in specs:
        name, paths = parse_group(spec)
        name = name or Path(paths[0]).name
        if name in groups:
            raise ValueError(f"two runs are named {name!r}: give them names with NAME=PATH")
        groups[name] = [read_run(p, Path(p).name if len(paths) > 1 else name) for p in paths]
    return groups


