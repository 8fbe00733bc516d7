"""Starting one training run for a benchmark: run_train.sh, or the entry module alone for one process.

Light on purpose (no torch): a driver that only starts runs and reads their records starts in a fraction of a second.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_training(
    args: list[str], log_file: Path, ngpu: int | None, extra_env: dict[str, str] | None = None
) -> float:
    """One training subprocess, console to `log_file`; returns its wall time in seconds.

    ngpu == 1: the entry module (TRAIN_FILE, default recipes.train) runs as the one process, with the environment
    torchrun would give it; torchrun's own start-up (seconds on a loaded machine) adds nothing to one process.
    Otherwise run_train.sh launches it (NGPU processes; None: all accelerators).
    """
    # launched by this interpreter: the torch and torchtitan whose versions the report records
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHON": sys.executable, **(extra_env or {})}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if ngpu == 1:
        env |= single_process_env()
        command = [sys.executable, "-m", env.get("TRAIN_FILE", "recipes.train"), *args]
    else:
        if ngpu is not None:
            env["NGPU"] = str(ngpu)
        command = ["bash", str(REPO_ROOT / "run_train.sh"), *args]
    start = time.perf_counter()
    with log_file.open("w") as log:
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"training exited with {result.returncode} (log: {log_file}):\n{tail}")
    return time.perf_counter() - start


def single_process_env() -> dict[str, str]:
    """What torchrun sets for a world of one (and run_train.sh's allocator setting), on a free local port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "PYTORCH_ALLOC_CONF": os.environ.get("PYTORCH_ALLOC_CONF", "expandable_segments:True")}
