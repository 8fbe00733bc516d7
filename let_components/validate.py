"""torchtitan's validator, made to evaluate the same text at the same step whether or not the run was resumed.

Why: with `validation.steps` set, torchtitan's Validator reads an infinite (re-looped) validation stream, and each
evaluation continues where the previous one stopped (it reads `steps + 1` batches: its loop fetches one more before
it breaks). Which text the evaluation at step s sees therefore depends on how many evaluations came before, and the
stream's position is not in the checkpoint: a resumed run starts the stream again and evaluates other text than the
uninterrupted run did at the same steps, a difference as large as the effects the runs compare (docs/robustness.md).

ResumableValidator replays, on its first call, the data reads (no forward) of the evaluations an uninterrupted run
made before that step, so every run - fresh or resumed - evaluates the same windows at the same steps. Runs with
`validation.steps = -1` read a finite stream from its start each time and need nothing.
"""

import time

from torch import nn
from torchtitan.components.validate import Validator
from torchtitan.tools.logging import logger


class ResumableValidator(Validator):
    """Takes Validator's arguments, so it is its own `build_validator_fn`."""

    _evaluated = False

    def validate(self, model_parts: list[nn.Module], step: int) -> None:
        if not self._evaluated:
            self._evaluated = True
            self.replay_before(step)
        super().validate(model_parts, step)

    def evaluations_before(self, step: int) -> int:
        """How many evaluations an uninterrupted run makes at steps 1 .. step - 1."""
        return sum(self.should_validate(earlier) for earlier in range(1, step))

    def replay_before(self, step: int) -> int:
        """Advance the validation stream past the evaluations before `step`, reading exactly as validate() does."""
        steps = self.job_config.validation.steps
        missed = self.evaluations_before(step) if steps != -1 else 0
        start = time.perf_counter()
        for _ in range(missed):
            for read, _batch in enumerate(self.validation_dataloader):
                if read >= steps:
                    break
        if missed:
            logger.info(
                f"[validation] resumed at step {step}: skipped the data of the {missed} earlier evaluations "
                f"({time.perf_counter() - start:.1f} s), so this run evaluates the uninterrupted run's text"
            )
        return missed

