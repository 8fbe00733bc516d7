"""Equality across parallel layouts: one config trained as one process and in a parallel layout (CPU ranks through
run_train.sh), compared step by step on its TensorBoard scalars.

Equal only if everything but the layout is equal:
- weights: torchtitan draws the initial weights differently per layout (PP seeds each pipeline rank apart and each
  stage initialises only its own modules; TP draws through DTensor's RNG), so every run, the one-process reference
  included, loads one seed checkpoint made by a single process (`--checkpoint.create_seed_checkpoint`);
- data: the same seed and the same GLOBAL batch; data parallelism splits it into smaller local batches, pipeline
  parallelism into microbatches that must divide the local batch. torchtitan's dataloader also shards the corpus by
  data-parallel rank (rank r reads its own part of the documents), so a layout with data parallelism trains on other
  text than one process: compare it with a reference of the same data-parallel degree (e.g. PP=2 x FSDP=2 against
  FSDP=2).

Scalars come from TensorBoard, which torchtitan writes on the rank that holds the last pipeline stage; the console of
rank 0 shows loss -1 under PP.

`ParallelEquality` runs each layout once and keeps its folder, so a module-scoped fixture shares one reference run
(and one seed) between every case of a test file, and several tests between one parallel run. Runs it is told to
`start` train side by side: most of a tiny run is single-threaded start-up and torchtitan's closing sleep.
"""

import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.logs import tb_scalars
from tests.support.runs import SHORT_RUN, signal_tree, start_train, train_ok

RUN_TIMEOUT = 600
"""Seconds one run may take, start-up included, while others train beside it."""

BASELINE_TAGS = ("loss_metrics/global_avg_loss", "grad_norm")
"""torchtitan's per-step scalars that must not depend on the layout: the loss over the global batch (before the
optimizer step) and the gradient norm before clipping."""
LET_TAGS = ("let/alignment_loss", "let/cosine")
"""The LET trainer's per-step alignment scalars, for LET runs under a parallel layout."""
ALIGNMENT_TOLERANCES = dict.fromkeys(LET_TAGS, 1e-5)
"""Largest allowed |layout - reference| of the alignment scalars per teaching step (the alignment term of a step is
about 1e-2)."""
DISTILLATION_TOLERANCES = {"let/distillation_loss": 1e-5, "let/top1_agreement": 1e-6}
"""The same for the logits term's scalars."""

LET_CONFIG = "train_configs/let_debug.toml"
LET_SHAPES = ("--training.seq_len", "64", "--let.stop_step", "3", *SHORT_RUN)
"""The LET equality runs: the debug config, sequences of 64 tokens, the teacher teaching on steps 1-3, every step
logged to TensorBoard; trained `LET_STEPS` steps of a global batch of `LET_GLOBAL_BATCH` sequences."""
LET_STEPS, LET_GLOBAL_BATCH = 4, 4
LET_TEACHING = range(1, 4)
"""The steps the teacher teaches (let.stop_step = 3): the [LET] metrics exist on them only."""
LET_LOGITS = ("--let.signal", "logits", "--let.kd_combine", "mix", "--let.lambda_0", "0.5", "--let.schedule",
              "constant")
"""signal = "logits" with SALT's mix at a constant lambda of 0.5."""
LET_SAVING = ("--checkpoint.no-load_only", "--checkpoint.interval", "2")
"""A layout's arguments to also save step 2, for a resume test (saving changes no number of the run)."""


@dataclass(frozen=True)
class Layout:
    """How one run is laid out: its CPU ranks, its data-parallel degree (which divides the global batch) and the
    `--parallelism` arguments that make the rest."""

    name: str
    ngpu: int = 1
    dp: int = 1
    args: tuple[str, ...] = ()
    microbatch_size: int = 0
    """parallelism.pipeline_parallel_microbatch_size (0: no pipeline parallelism)."""
    log_ranks: str = "0"
    """LOG_RANK: the ranks whose console lines reach the run's train.log."""

    def train_args(self, global_batch: int) -> tuple[str, ...]:
        """This layout's arguments for `global_batch` sequences per step (no gradient accumulation)."""
        assert global_batch % self.dp == 0, f"{self.name}: global batch {global_batch} not divisible by dp {self.dp}"
        local_batch = global_batch // self.dp
        pipeline = ()
        if self.microbatch_size:
            # torchtitan's schedule hangs or fails if the microbatches do not tile the local batch
            assert local_batch % self.microbatch_size == 0, (self.name, local_batch, self.microbatch_size)
            pipeline = ("--parallelism.pipeline_parallel_microbatch_size", str(self.microbatch_size))
        # the config may ask for FSDP over all ranks (data_parallel_shard_degree = -1): the layout names its own
        return ("--training.local_batch_size", str(local_batch), "--parallelism.data_parallel_shard_degree",
                str(self.dp), *pipeline, *self.args)


ONE_PROCESS = Layout("one process")


def pipeline(schedule: str, degree: int = 2, microbatch_size: int = 1, args: tuple[str, ...] = ()) -> Layout:
    """PP over `degree` ranks with torchtitan's schedule name (GPipe, 1F1B, Interleaved1F1B, ...); multi-stage
    schedules get torchtitan's default of 2 stages per rank."""
    return Layout(f"PP={degree} {schedule}", ngpu=degree, microbatch_size=microbatch_size, args=(
        "--parallelism.pipeline_parallel_degree", str(degree), "--parallelism.pipeline_parallel_schedule", schedule,
        *args))


def tensor_parallel(degree: int = 2) -> Layout:
    return Layout(f"TP={degree}", ngpu=degree, args=("--parallelism.tensor_parallel_degree", str(degree)))


def data_parallel(degree: int = 2) -> Layout:
    """FSDP over `degree` ranks: each rank trains 1/degree of the global batch, read from its own part of the corpus
    (a reference for layouts of the same data-parallel degree, not for one process)."""
    return Layout(f"FSDP={degree}", ngpu=degree, dp=degree)


def bytes_aligned_args(folder: Path) -> tuple[str, ...]:
    """Arguments for a teacher of another tokenizer (a tiny random Llama in a 512-token Qwen-style vocabulary, saved
    under `folder`) aligned by bytes to the debug student in the project's own tokenizer: the student's shape is the
    default one's, so the runs share its seed checkpoint."""
    from tests.support.teachers import save_llama
    from tests.support.tokenizers import save_qwen_tokenizer

    teacher = save_llama(folder / "qwen_teacher", tokenizer_dir=save_qwen_tokenizer(folder / "qwen", vocab_size=512),
                         vocab_size=512)
    return ("--let.token_alignment", "bytes", "--model.hf_assets_path", "./assets/tokenizer", "--let.teacher_path",
            str(teacher))


def max_differences(reference: Path, run: Path, tags: Iterable[str], steps: Iterable[int]) -> dict[str, float]:
    """tag -> the largest |run - reference| over `steps` (both runs must have logged every one of them)."""
    steps = list(steps)
    differences = {}
    for tag in tags:
        expected, got = tb_scalars(reference, tag), tb_scalars(run, tag)
        missing = [step for step in steps if step not in expected or step not in got]
        assert not missing, f"{tag}: not logged at steps {missing} (reference {sorted(expected)}, run {sorted(got)})"
        differences[tag] = max(abs(got[step] - expected[step]) for step in steps)
    return differences


class ParallelEquality:
    """One config trained in several layouts from one seed checkpoint; each run made at most once.

    folder: where the seed and every run dump (e.g. a module-scoped tmp_path_factory folder).
    args: arguments every run shares (shapes, steps, logging); the layout adds its own, and the global batch.
    """

    def __init__(self, folder: Path, config: str, *args: str, global_batch: int, steps: int):
        self.folder, self.config, self.args = folder, config, args
        self.global_batch, self.steps = global_batch, steps
        self._seed: Path | None = None
        self._started: dict[Layout, subprocess.Popen] = {}
        self._runs: dict[Layout, Path] = {}

    @property
    def seed(self) -> Path:
        """The step-0 checkpoint every run starts from, made by one process (torchtitan's seed checkpoint)."""
        if self._seed is None:
            folder = self.folder / "seed"
            train_ok(folder, self.config, *self.args, *ONE_PROCESS.train_args(self.global_batch),
                     "--checkpoint.enable", "--checkpoint.create_seed_checkpoint")
            self._seed = folder / "checkpoint" / "step-0"
            assert (self._seed / ".metadata").is_file(), f"no seed checkpoint in {self._seed}"
        return self._seed

    def folder_of(self, layout: Layout) -> Path:
        return self.folder / layout.name.replace(" ", "_").replace("=", "")

    def start(self, *layouts: Layout) -> None:
        """Start the runs of `layouts` not started yet, in the background (the seed first, if needed)."""
        for layout in layouts:
            if layout in self._started:
                continue
            folder = self.folder_of(layout)
            folder.mkdir(parents=True)
            # the layout's own arguments last: it may override what every run shares (e.g. save checkpoints)
            self._started[layout] = start_train(
                folder / "train.log", "--job.config_file", self.config, "--job.dump_folder", str(folder), *self.args,
                "--training.steps", str(self.steps), "--checkpoint.enable", "--checkpoint.load_only",
                "--checkpoint.initial_load_path", str(self.seed), *layout.train_args(self.global_batch),
                ngpu=layout.ngpu, env={"LOG_RANK": layout.log_ranks},
            )

    def run(self, layout: Layout) -> Path:
        """The dump folder of `layout`'s finished run (started now unless already), trained from the seed, saving
        nothing."""
        if layout not in self._runs:
            self.start(layout)
            process, folder = self._started[layout], self.folder_of(layout)
            try:
                returncode = process.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                signal_tree(process.pid, signal.SIGKILL)
                raise
            assert returncode == 0, f"{layout.name} failed:\n{(folder / 'train.log').read_text()[-4000:]}"
            self._runs[layout] = folder
        return self._runs[layout]

    def close(self) -> None:
        """Stop the runs still training (a test that failed early, or a -k selection that never waited)."""
        for process in self._started.values():
            if process.poll() is None:
                signal_tree(process.pid, signal.SIGKILL)
                process.wait()

    def differences(self, layout: Layout, tags: Iterable[str] = BASELINE_TAGS,
                    reference: Layout = ONE_PROCESS, steps: Iterable[int] | None = None) -> dict[str, float]:
        """tag -> the largest difference between `layout` and `reference` over `steps` (default: every step)."""
        assert layout.dp == reference.dp, (
            f"{layout.name} vs {reference.name}: data-parallel degrees {layout.dp} and {reference.dp} read other "
            "documents (the dataloader shards the corpus by data-parallel rank); compare equal degrees"
        )
        steps = range(1, self.steps + 1) if steps is None else steps
        return max_differences(self.run(reference), self.run(layout), tags, steps)

    def assert_equal(self, layout: Layout, tolerances: Mapping[str, float], reference: Layout = ONE_PROCESS,
                     steps: Iterable[int] | None = None) -> dict[str, float]:
        """Every tag of `tolerances` within its absolute tolerance of `reference` at every step of `steps` (default:
        all; the LET metrics exist only on teaching steps); returns the measured largest differences."""
        differences = self.differences(layout, tolerances, reference, steps)
        table = {tag: (difference, tolerances[tag]) for tag, difference in differences.items()}
        assert all(difference <= tolerance for difference, tolerance in table.values()), (
            f"{layout.name} vs {reference.name}: tag -> (largest difference, tolerance): {table}; "
            f"{self.values(layout, tolerances, reference)}"
        )
        return differences

    def assert_let_equal(self, layout: Layout, tolerances: Mapping[str, float], term: Mapping[str, float],
                         reference: Layout = ONE_PROCESS) -> None:
        """A LET run: the baseline tags of `tolerances` at every step, the LET term's tags of `term` on the teaching
        steps (`LET_TEACHING`)."""
        self.assert_equal(layout, tolerances, reference)
        self.assert_equal(layout, term, reference, steps=LET_TEACHING)

    def assert_let_resume_reproduces(self, layout: Layout, folder: Path, step: int = 2) -> str:
        """`layout`'s LET run (which saves `step`, e.g. with `LET_SAVING`) resumed in `folder` from that checkpoint
        reproduces the uninterrupted run after it, within 1e-6: the loss and the LET alignment scalars on the teaching
        steps, the loss and the gradient norm on the steps after the teacher's release. Returns the resumed run's log
        (the ranks of `layout.log_ranks`)."""
        full = self.run(layout)
        shutil.copytree(full / "checkpoint" / f"step-{step}", folder / "checkpoint" / f"step-{step}")
        log = train_ok(folder, self.config, *self.args, "--training.steps", str(self.steps),
                       *layout.train_args(self.global_batch), "--checkpoint.enable", ngpu=layout.ngpu,
                       env={"LOG_RANK": layout.log_ranks})
        resumed = range(step + 1, self.steps + 1)
        loss = BASELINE_TAGS[0]
        differences = max_differences(full, folder, (loss, *LET_TAGS), [s for s in resumed if s in LET_TEACHING])
        differences |= max_differences(full, folder, BASELINE_TAGS, [s for s in resumed if s not in LET_TEACHING])
        assert all(difference <= 1e-6 for difference in differences.values()), differences
        return log

    def values(self, layout: Layout, tags: Iterable[str], reference: Layout = ONE_PROCESS) -> dict[str, list]:
        """tag -> [(step, reference value, layout value)], for failure messages."""
        values = {}
        for tag in tags:
            expected, got = tb_scalars(self.run(reference), tag), tb_scalars(self.run(layout), tag)
            values[tag] = [(step, expected.get(step), got.get(step)) for step in range(1, self.steps + 1)]
        return values


def let_equality(folder: Path, *args: str) -> ParallelEquality:
    """The LET equality runs' `ParallelEquality`: the debug config in `LET_SHAPES`, plus `args`, `LET_STEPS` steps of
    `LET_GLOBAL_BATCH` sequences."""
    return ParallelEquality(folder, LET_CONFIG, *LET_SHAPES, *args, global_batch=LET_GLOBAL_BATCH, steps=LET_STEPS)


@dataclass(frozen=True)
class BytesAligned:
    """LET runs that include a teacher of another tokenizer aligned by bytes: their `ParallelEquality`, and that
    teacher's two layouts, one process (`reference`) and parallel (`layout`), whose arguments name the teacher saved
    under the runs' folder."""

    runs: ParallelEquality
    reference: Layout
    layout: Layout
