"""recipes/studies/slurm/let.sbatch: the command it builds from a (simulated) 2-node Slurm allocation."""

import os
import shlex
import subprocess

from tests.support import REPO

FAKE_SCONTROL = """#!/usr/bin/bash
# scontrol show hostnames gpu[07-08]
[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] && printf 'gpu07\\ngpu08\\n' && exit 0
exit 1
"""


def test_two_node_allocation_builds_one_torchrun_per_node_with_rendezvous_on_the_first(tmp_path):
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(FAKE_SCONTROL)
    scontrol.chmod(0o755)
    env = {
        **os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "DRY_RUN": "1",
        "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NNODES": "2", "SLURM_JOB_ID": "4242",
        "SLURM_GPUS_ON_NODE": "8", "SLURM_SUBMIT_DIR": str(REPO),
    }
    args = ["--job.config_file", "train_configs/let_7b.toml", "--let.lambda_0", "0.3"]
    result = subprocess.run(["bash", str(REPO / "recipes/studies/slurm/let.sbatch"), *args], env=env, text=True,
                            capture_output=True, check=True)
    command = shlex.split(result.stdout)
    torchrun = command.index("torchrun")
    assert command[:torchrun] == ["srun", "--nodes", "2", "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]
    launcher = command[torchrun:command.index("-m")]
    pairs = dict(zip(launcher[1::2], launcher[2::2], strict=True))
    assert pairs["--nnodes"] == "2" and pairs["--nproc_per_node"] == "8"
    assert pairs["--rdzv_backend"] == "c10d" and pairs["--rdzv_endpoint"] == "gpu07:29500"
    assert pairs["--rdzv_id"] == "4242"
    assert command[command.index("-m"):] == ["-m", "recipes.train", *args]


def test_outside_an_allocation_it_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    scontrol = tmp_path / "scontrol"
    scontrol.write_text("#!/usr/bin/bash\nexit 0\n")
    scontrol.chmod(0o755)
    env.update(PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}", DRY_RUN="1", SLURM_JOB_NODELIST="x")
    result = subprocess.run(["bash", str(REPO / "recipes/studies/slurm/let.sbatch")], env=env, text=True,
                            capture_output=True)
    assert result.returncode != 0
    assert "run inside a Slurm allocation" in result.stderr
