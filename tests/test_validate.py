"""The resumable validator's replay, on a stand-in stream; tests/test_trainer.py checks a real resume end to end."""

from types import SimpleNamespace

from let_components.validate import ResumableValidator


class Stream:
    """Yields consecutive batch numbers and remembers its position across loops, as torchtitan's re-looped
    validation dataset does (its state lives in the dataset, not in the iterator)."""

    def __init__(self) -> None:
        self.position = 0

    def __iter__(self):
        while True:
            self.position += 1
            yield self.position, None


def _validator(freq: int, steps: int) -> ResumableValidator:
    validator = object.__new__(ResumableValidator)  # no model, loss or process group: only the replay is under test
    validator.job_config = SimpleNamespace(validation=SimpleNamespace(freq=freq, steps=steps))
    validator.validation_dataloader = Stream()
    return validator


def test_evaluations_before_a_step_count_step_1_and_every_multiple_of_freq():
    validator = _validator(freq=25, steps=18)
    assert validator.evaluations_before(1) == 0
    assert validator.evaluations_before(2) == 1  # step 1
    assert validator.evaluations_before(325) == 13  # 1, 25, 50, ..., 300


def test_replay_reads_steps_plus_one_batches_per_missed_evaluation_like_torchtitans_loop():
    validator = _validator(freq=25, steps=18)
    assert validator.replay_before(325) == 13
    assert validator.validation_dataloader.position == 13 * 19  # validate() fetches one more batch, then breaks
    fresh = _validator(freq=25, steps=18)
    assert fresh.replay_before(1) == 0 and fresh.validation_dataloader.position == 0


def test_a_finite_validation_set_is_never_replayed():
    validator = _validator(freq=25, steps=-1)  # read from its start at every evaluation
    assert validator.replay_before(325) == 0 and validator.validation_dataloader.position == 0
