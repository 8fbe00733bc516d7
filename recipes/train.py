"""Train a student with LET (or plain torchtitan with `[let] enable = false`).

    ./run_train.sh --job.config_file train_configs/let_debug.toml
"""

import sys

from torchtitan.tools.logging import init_logger, logger

import let_components  # noqa: F401  (registers the student TrainSpec and datasets)
from let_components import platform
from let_components.config import LETConfigError
from let_components.trainer import LETTrainer


def main() -> None:
    try:
        platform.main(LETTrainer)
    except LETConfigError as error:
        init_logger()
        logger.error(f"[LET] configuration error: {error}")
        sys.exit(2)


if __name__ == "__main__":
    main()
