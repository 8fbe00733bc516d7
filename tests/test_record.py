"""The run record, let_run.json (let_components/record.py): what survives a kill mid-write and a broken file."""

import json
from pathlib import Path

import pytest

from let_components.config import LETConfigError
from let_components.record import RUN_RECORD, read_record, record_decision, write_record


def test_a_kill_between_write_and_rename_leaves_the_old_record_readable(tmp_path, monkeypatch):
    write_record(tmp_path, {"lambda_0": 0.1, "stop_step": 100}, resuming=False)

    def killed_half_way(path: Path, text: str, *args, **kwargs) -> int:
        with open(path, "w") as file:
            file.write(text[: len(text) // 2])
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(Path, "write_text", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        record_decision(tmp_path, {"step": 40, "student_bits_per_byte": 2.0, "teacher_bits_per_byte": 2.1})
    monkeypatch.undo()
    assert read_record(tmp_path) == {"lambda_0": 0.1, "stop_step": 100}
    write_record(tmp_path, {"stop_step": 200}, resuming=True)  # the next start writes over the partial file
    assert read_record(tmp_path) == {"lambda_0": 0.1, "stop_step": 200}
    assert [p.name for p in tmp_path.iterdir()] == [RUN_RECORD]


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
