"""Training runs through run_train.sh with CPU ranks: to the end, or in the background for tests that signal them."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import REPO

TINY_BATCH = ("--training.seq_len", "64", "--training.local_batch_size", "2")
"""Two sequences of 64 tokens per rank and step: for runs that test the wiring and the step, not learning."""
SHORT_RUN = ("--metrics.log_freq", "1", "--validation.no-enable", "--metrics.enable_tensorboard")
"""Every step logged, no validation, TensorBoard on (full-precision losses for tb_scalars)."""


def _train_env(ngpu: int, env: dict | None) -> dict:
    """The environment of a run_train.sh subprocess: CPU ranks, launched by the interpreter that runs the tests
    (not by whichever python or torchrun is first on PATH), with the repository importable."""
    run_env = {**os.environ, "NGPU": str(ngpu), "PYTHONUNBUFFERED": "1", "PYTHON": sys.executable, **(env or {})}
    run_env["PYTHONPATH"] = str(REPO) + os.pathsep + run_env.get("PYTHONPATH", "")
    return run_env


def run_train(*args: str, ngpu: int = 1, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """./run_train.sh with CPU ranks; returns the finished process (stdout+stderr in .stdout)."""
    return subprocess.run(
        ["bash", str(REPO / "run_train.sh"), *args], cwd=REPO, env=_train_env(ngpu, env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )


def train_ok(folder: Path, config: str, *args: str, ngpu: int = 1, env: dict | None = None) -> str:
    """A run of `config` (plus `args`) dumping into `folder` that must succeed; returns its log."""
    result = run_train("--job.config_file", config, "--job.dump_folder", str(folder), *args, ngpu=ngpu, env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    return result.stdout


def start_train(log: Path, *args: str, ngpu: int = 1, env: dict | None = None) -> subprocess.Popen:
    """./run_train.sh in the background, output to `log`: for tests that signal a run while it trains."""
    with open(log, "w") as out:
        return subprocess.Popen(["bash", str(REPO / "run_train.sh"), *args], cwd=REPO, env=_train_env(ngpu, env),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, read off /proc: torchrun's workers run in sessions of their own, so neither
    the launcher's process group nor its session reaches them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def signal_tree(pid: int, sig: int) -> list[int]:
    """Send `sig` to every process of a run (as Slurm signals every process of a job step); SIGKILL also takes
    each one's process group. Returns the pids signalled."""
    pids = process_tree(pid)
    for target in pids:
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL and os.getpgid(target) != os.getpgid(0):
                os.killpg(os.getpgid(target), sig)
            os.kill(target, sig)
    return pids


def wait_for(predicate, process: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until predicate() holds; fails if the run ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended (rc {process.returncode}) before the awaited point"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.2)
