"""The run record: `let_run.json` in the dump folder, what tools read about a run instead of parsing its logs.

It holds the run's `[let]` values, training.steps and student.init (written at every start) and, where the stop
rule decided when the teacher leaves (let.stop_when = "caught_up"), its decision: the last step the teacher taught
and the numbers the rule decided on. A resumed start merges into it, so a decision made before the resume survives;
a fresh start (nothing to resume) begins a new record.
"""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from .config import JobConfig, LETConfigError

RUN_RECORD = "let_run.json"
DECISION = "stop_decision"
"""The key of a stop rule's decision: {"step": the last step the teacher taught, ...the rule's numbers}."""


def read_record(dump_folder: str | Path) -> dict[str, Any]:
    path = Path(dump_folder) / RUN_RECORD
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise LETConfigError(
            f"job.dump_folder='{dump_folder}': {RUN_RECORD} is not valid JSON ({error}); restore it or remove it "
            "(a resume then starts a new record)"
        ) from None


def write_record(dump_folder: str | Path, values: dict[str, Any], resuming: bool) -> None:
    """Write `values` (rank 0), keeping what an earlier start of this run recorded when it resumes. Written to a
    temporary file and renamed over the record: a kill mid-write leaves the previous record whole."""
    record = {**read_record(dump_folder), **values} if resuming else values
    path = Path(dump_folder) / RUN_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{RUN_RECORD}.partial")
    with open(partial, "w") as file:
        file.write(json.dumps(record, indent=2) + "\n")
        file.flush()
        os.fsync(file.fileno())  # the new bytes are on disk before the rename makes them the record
    os.replace(partial, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # and the rename itself: after a power loss the record is the old one or the new one
    finally:
        os.close(folder)


def recorded_decision(dump_folder: str | Path) -> dict[str, Any] | None:
    """The stop rule's decision this run recorded (it may lie after the checkpoint a resume starts from)."""
    return read_record(dump_folder).get(DECISION)


def record_decision(dump_folder: str | Path, decision: dict[str, Any] | None) -> None:
    """Record the stop rule's decision; None removes one (a checkpoint from before it was loaded)."""
    record = {key: value for key, value in read_record(dump_folder).items() if key != DECISION}
    write_record(dump_folder, record if decision is None else {**record, DECISION: decision}, resuming=False)


class RunRecord:
    """One run's record, handed to whoever writes into it (the trainer at start, a stop rule when it decides)."""

    def __init__(self, dump_folder: str | Path):
        self.dump_folder = Path(dump_folder)

    def decision(self) -> dict[str, Any] | None:
        return recorded_decision(self.dump_folder)

    def decide(self, decision: dict[str, Any] | None) -> None:
        record_decision(self.dump_folder, decision)

    def start(self, job_config: JobConfig, resuming: bool) -> None:
        """At start (rank 0): the run's [let] values, training.steps and student.init."""
        if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
            return
        values = {**dataclasses.asdict(job_config.let), "training_steps": job_config.training.steps,
                  "student_init": job_config.student.init}
        write_record(self.dump_folder, values, resuming)
