"""The tests' one JobConfig parser: what ./run_train.sh would train."""

from pathlib import Path

from torchtitan.config import ConfigManager, JobConfig

from recipes.common import parse_job_config
from tests.support import REPO


def parse_config(config_file: str | Path | None, *overrides: str) -> JobConfig:
    """`./run_train.sh --job.config_file CONFIG_FILE OVERRIDES...` (CONFIG_FILE relative to the repository); None:
    the overrides are a whole command line that names its own config file (e.g. one a study script prints)."""
    if config_file is None:
        return ConfigManager().parse_args(list(overrides))
    return parse_job_config(str(REPO / config_file), overrides)
