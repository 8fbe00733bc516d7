"""The `[let]` and `[student]` TOML sections, merged into torchtitan's JobConfig, and the two error types.

Used through `[job] custom_config_module = "let_components.config"`; every key is also a CLI flag
(`--let.lambda_0 0.3`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar, Literal, TypeVar, get_args

from torchtitan.config import JobConfig as TitanJobConfig

from .schedule import Schedule

Built = TypeVar("Built")


@dataclass
class LET:
    enable: bool = False
    """Add the late-to-early alignment term; false trains plain torchtitan."""

    teacher_path: str = ""
    """Hugging Face-format teacher folder (config.json + *.safetensors + tokenizer files)."""

    teacher_backend: Literal["auto", "native", "transformers"] = "auto"
    """What builds the teacher: native (this package's torchtitan-style module: llama, qwen2, qwen3, gpt_neox, opt),
    transformers (any causal LM transformers can build; the "hf" extra), or auto (native where there is one)."""

    teacher_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    """Teacher weights and activations; on a CPU-only machine float32 is used whatever this says."""

    teacher_compile: bool = True
    """torch.compile the teacher forward (used only where the student is compiled too)."""

    teacher_compile_mode: Literal["default", "reduce-overhead"] = "default"
    """torch.compile mode of the teacher: reduce-overhead replays its forward as CUDA graphs (fixed shapes, GPU,
    inductor backend); their memory pool is freed with the teacher at stop_step."""

    student_layer: int = 1
    """k: 0-based student block whose OUTPUT is aligned (transformers' hidden_states[k+1])."""

    teacher_layer: int = -1
    """-1: teacher's final hidden state after its final norm; i >= 0: output of teacher block i."""

    lambda_0: float = 0.1
    """Initial alignment weight (the paper's best of 0.01/0.1/0.3/1/3)."""

    stop_step: int = 0
    """S_stop: alignment runs on steps 1..stop_step, then the teacher is released."""

    schedule: Schedule = "linear"
    """How lambda decays from lambda_0 to 0 over the first stop_step steps."""

    stop_when: str = "step"
    """A rule of let_components/stop/ (its registry). step: the teacher teaches on steps 1..stop_step (the paper's).
    caught_up: it also leaves, from the next step on, once the student's language-modeling loss per byte of text,
    smoothed, is at or below the teacher's on the same training text (plus caught_up_margin); stop_step stays the
    schedule's horizon and the hard cap."""

    caught_up_margin: float = 0.0
    """stop_when = "caught_up": bits per byte. The teacher leaves when student_bpb <= teacher_bpb + margin: > 0
    lets it leave while the student is still that far behind, < 0 keeps it until the student is that far ahead."""

    caught_up_every: int = 10
    """stop_when = "caught_up": steps between checks; only check steps run the teacher's LM head."""

    caught_up_window: int = 5
    """stop_when = "caught_up": checks pooled into the smoothed comparison (every x window steps of text: 50 by
    default); the rule cannot fire before the window is full."""

    caught_up_min_steps: int = 0
    """stop_when = "caught_up": the rule may fire only from this step on (besides a full window)."""

    caught_up_sequences: int = 4
    """stop_when = "caught_up": sequences per micro-batch on which both losses are measured at a check (a
    subsample: the teacher's LM head over a whole batch can cost as much as a student step)."""

    projection: Literal["interpolate", "linear"] = "interpolate"
    """interpolate: teacher vector resized to the student width (the paper's, no parameters);
    linear: learned student->teacher map, cosine in teacher space."""

    interpolate_align_corners: bool = True
    """projection = "interpolate": F.interpolate(mode="linear")'s align_corners (the first and last entries of the
    two vectors coincide). The paper does not say; true is what every number in docs/ was measured with."""

    token_alignment: str = "same"
    """An option of let_components/tokens/ (its registry). same: the student trains in the teacher's tokenizer and
    vocabulary, position j = position j (the paper's);
    bytes: the student keeps its own tokenizer (model.hf_assets_path) and vocabulary, the teacher reads the same
    text in its own tokenization, and student position j is paired with the last teacher token that ends at or
    before the end of student token j (byte-level BPE tokenizer.json and tiktoken files on both sides)."""

    teacher_seq_len: int = 0
    """token_alignment = "bytes": teacher tokens per window, a fixed shape (0: training.seq_len). A window's teacher
    tokens beyond it are cut; the student positions paired with them lose their target (logged: let/lost)."""

    teacher_window_bos: bool = True
    """token_alignment = "bytes": a teacher window that starts mid-document begins with the teacher tokenizer's BOS
    (for a teacher that always read one first, e.g. Gemma); it takes one teacher_seq_len slot, and neither it nor
    the prediction made from it alone counts. false: the windows as cut. token_alignment = "same" reads the
    student's windows as packed whatever this says (docs/tokenizers.md)."""

    signal: str = "hidden"
    """What the teacher teaches, a term of let_components/terms/ (its registry): hidden = LET (its final hidden
    state aligned to student block k); logits = logit
    distillation (SALT, RKD): KL between the teacher's and the student's next-token distributions."""

    kd_temperature: float = 1.0
    """signal = "logits": temperature T of both softmaxes; the KL is scaled by T^2 (Hinton et al.)."""

    kd_direction: Literal["forward", "reverse"] = "forward"
    """signal = "logits": forward = KL(teacher || student) (classic KD, mass-covering); reverse = KL(student ||
    teacher) (mode-seeking)."""

    kd_combine: Literal["add", "mix"] = "add"
    """signal = "logits": add = CE + lambda * KD; mix = (1 - lambda) * CE + lambda * KD (SALT's form)."""

    kd_chunk_tokens: int = 512
    """signal = "logits": tokens per chunk of the KL; its float32 working set is about 8 chunk x vocab tensors
    (docs/signals.md: what each costs)."""


@dataclass
class Student:
    """Choices about the student model itself, for LET and baseline runs alike.

    A section of its own, not a `[let]` key: a baseline (`let.enable = false`, "plain torchtitan") must start from
    the same weights as the LET run it is compared with, and `[let]` keys are LET's. Not in torchtitan's `[model]`
    either: torchtitan's own model specs would ignore the key, only the LET student specs read it.
    """

    init: Literal["torchtitan", "hf"] = "torchtitan"
    """torchtitan: the family's own init_weights (llama3: token embeddings N(0, 1), LM head std dim^-0.5);
    hf: Hugging Face / Megatron-LM style, N(0, 0.02) for embeddings and every linear including the LM head, with
    the blocks' residual output projections at 0.02/sqrt(2 * n_layers) (let_llama and let_qwen3)."""


@dataclass
class JobConfig(TitanJobConfig):
    let: LET = field(default_factory=LET)
    student: Student = field(default_factory=Student)


class LETError(Exception):
    """An error recipes/train.py prints as one line, `[LET] <headline>: <message>`, before exiting with `exit_code`."""

    headline: ClassVar[str]
    exit_code: ClassVar[int]


class LETConfigError(LETError, ValueError):
    """A user mistake (a TOML key, a teacher folder, a data path) that cannot work: the message names the key, the
    value and what would be valid. Found before training starts wherever it can be."""

    headline = "configuration error"
    exit_code = 2


class LETRuntimeError(LETError, RuntimeError):
    """Training cannot go on (a non-finite value, the teacher folder changed under a resumed run): raised on every
    rank alike, before any weight or checkpoint of the failing step is written."""

    headline = "training stopped"
    exit_code = 3


def once(job_config: TitanJobConfig, name: str, build: Callable[[], Built]) -> Built:
    """The run's `name`, built by `build()` the first time anyone asks for it: torchtitan hands its TrainSpec hooks
    (tokenizer, dataloader, model args) only the job config, so what a run decides at start-up travels with it - one
    object per job config, not one per caller."""
    built = job_config.__dict__.setdefault("_let_built", {})
    if name not in built:
        built[name] = build()
    return built[name]


def valid_choices(config_class: type, key: str) -> tuple[str, ...]:
    """The values a `Literal[...]`-annotated config field accepts, read off the annotation itself."""
    annotation = next(f.type for f in fields(config_class) if f.name == key)
    return get_args(annotation)


def complete_checkpoint_steps(folder: Path) -> list[int]:
    """Steps of the COMPLETE checkpoints in a checkpoint folder, by torchtitan 0.2.2's own test
    (CheckpointManager._find_load_step): a step-N folder holding DCP's `.metadata`, which is written last, or a
    `model.safetensors.index.json`. A save killed half-way leaves a step folder without either."""
    steps = []
    for step_folder in folder.glob("step-*"):
        step = step_folder.name.removeprefix("step-")
        complete = (step_folder / ".metadata").is_file() or (step_folder / "model.safetensors.index.json").is_file()
        if step.isdigit() and complete:
            steps.append(int(step))
    return sorted(steps)


def latest_checkpoint_step(job_config: TitanJobConfig) -> int:
    """The step torchtitan 0.2.2 resumes this job after (0: training starts at step 1), decided as
    CheckpointManager.load decides: no checkpoint folder -> initial_load_path or nothing, weights only, step 0;
    load_step = 0 -> the step-0 (seed) checkpoint, weights only, step 0; load_step > 0 -> that step; -1 -> the latest
    complete checkpoint."""
    ckpt = job_config.checkpoint
    folder = Path(job_config.job.dump_folder) / ckpt.folder
    if not ckpt.enable or not folder.is_dir():
        return 0
    if ckpt.load_step >= 0:
        return ckpt.load_step
    return max(complete_checkpoint_steps(folder), default=0)
