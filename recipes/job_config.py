"""The JobConfig a recipe works with: the train config a run would use, parsed by torchtitan's own parser."""

from collections.abc import Sequence

from torchtitan.config import ConfigManager, JobConfig

import let_components  # noqa: F401  (registers the datasets and the student TrainSpecs)


def parse_job_config(config_file: str, overrides: Sequence[str] = ()) -> JobConfig:
    """As `./run_train.sh --job.config_file CONFIG_FILE OVERRIDES...` would train ([let] and [student] included)."""
    return ConfigManager().parse_args(["--job.config_file", config_file, *overrides])
