"""Train a student with LET (or plain torchtitan with `[let] enable = false`).

    ./run_train.sh --job.config_file train_configs/let_debug.toml
"""

import os
import sys
from collections.abc import Callable

from torchtitan.tools.logging import init_logger, logger

import let_components  # noqa: F401  (registers the student TrainSpec and datasets)
from let_components import dry_run, platform
from let_components.config import LETError
from let_components.trainer import build_trainer

from .dry_run import start_dry_run


def main(trainer_cls: Callable | None = None) -> None:
    """trainer_cls: LETTrainer or, for a baseline, PreemptibleTrainer (build_trainer chooses); tests pass a LETTrainer
    subclass that injects a fault (e.g. a non-finite alignment term)."""
    build = trainer_cls or build_trainer

    def start(job_config):
        """The trainer; a dry run's (comm.mode fake_backend or local_tensor) adapted first and reporting memory."""
        if not dry_run.is_dry_run(job_config):
            return build(job_config)
        return start_dry_run(build, job_config, sys.argv[1:])

    try:
        platform.main(start)
    except LETError as error:
        init_logger()
        logger.error(f"[LET] {error.headline}: {error}")
        # torchtitan's Trainer.train is wrapped in torchelastic's @record, which saved a traceback for torchrun's
        # failure summary; the line above says it all
        error_file = os.environ.get("TORCHELASTIC_ERROR_FILE", "")
        if error_file and os.path.isfile(error_file):
            os.remove(error_file)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
