"""The run record, let_run.json (let_components/record.py): what survives a kill mid-write and a broken file."""

import json
import os

import pytest

from let_components.config import LETConfigError
from let_components.record import RUN_RECORD, read_record, record_decision, write_record


def test_a_kill_between_write_and_rename_leaves_the_old_record_readable(tmp_path, monkeypatch):
    write_record(tmp_path, {"lambda_0": 0.1, "stop_step": 100}, resuming=False)

    def killed_half_way(fd: int) -> None:
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "fsync", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        record_decision(tmp_path, {"step": 40, "student_bits_per_byte": 2.0, "teacher_bits_per_byte": 2.1})
    monkeypatch.undo()
    assert read_record(tmp_path) == {"lambda_0": 0.1, "stop_step": 100}
    write_record(tmp_path, {"stop_step": 200}, resuming=True)  # the next start writes over the partial file
    assert read_record(tmp_path) == {"lambda_0": 0.1, "stop_step": 200}
    assert [p.name for p in tmp_path.iterdir()] == [RUN_RECORD]


def test_the_record_is_on_disk_before_it_is_renamed_and_the_rename_after(tmp_path, monkeypatch):
    """Review finding: the record was replaced atomically but never fsynced, so after a power loss the rename could
    survive while the bytes it names did not (an empty or partial let_run.json)."""
    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def logged_fsync(fd: int) -> None:
        events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        fsync(fd)

    def logged_replace(source, target) -> None:
        events.append("rename")
        replace(source, target)

    monkeypatch.setattr(os, "fsync", logged_fsync)
    monkeypatch.setattr(os, "replace", logged_replace)
    write_record(tmp_path, {"lambda_0": 0.1}, resuming=False)
    assert events == ["fsync file", "rename", "fsync folder"]
    assert read_record(tmp_path) == {"lambda_0": 0.1}


def test_a_broken_record_is_one_line_naming_the_file(tmp_path):
    (tmp_path / RUN_RECORD).write_text('{"lambda_0": 0.1, "stop_')
    with pytest.raises(LETConfigError, match=f"job.dump_folder='{tmp_path}': {RUN_RECORD} is not valid JSON") as error:
        read_record(tmp_path)
    assert "\n" not in str(error.value)


def test_withdrawing_a_decision_keeps_the_rest_of_the_record(tmp_path):
    write_record(tmp_path, {"lambda_0": 0.1}, resuming=False)
    record_decision(tmp_path, {"step": 40})
    assert read_record(tmp_path) == {"lambda_0": 0.1, "stop_decision": {"step": 40}}
    record_decision(tmp_path, None)
    assert json.loads((tmp_path / RUN_RECORD).read_text()) == {"lambda_0": 0.1}
