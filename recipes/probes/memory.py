"""Per-GPU memory of a LET run under FSDP2, computed from shapes (not measured): does a student fit?

    python -m recipes.probes.memory        # the paper's 7B setting: 7B student, Llama-3.2-1B teacher, 8 x 80 GB
    python -m recipes.probes.memory --model let_qwen3 --flavor 1.7B --teacher-config DIR/config.json [--signal logits]

Parameter counts come from the real modules built on the meta device (no memory, no formula drift); the
activation terms use the standard per-layer formula of Korthikanti et al. 2022 ("Reducing Activation
Recomputation in Large Transformer Models"): s*b*h*(34 + 5*a*s/h) bytes per block in 16-bit. The 5*a*s/h
part is the stored s x s attention scores; SDPA/flash attention never stores them, so it is left out.
"""

import argparse
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchtitan.protocols.train_spec import BaseModelArgs, get_train_spec

import let_components  # noqa: F401  (registers the student specs)
from let_components.student import Student
from let_components.teacher import teacher_architecture
from let_components.teacher.registry import TeacherOptions

from ..assets.teacher_shapes import TEACHER_SHAPES

GIB = 2**30
LET_ITEMS = ("teacher", "alignment", "distillation")
"""Rows (by name prefix) that a baseline run does not have: all freed after stop_step."""


@dataclass
class ParameterCount:
    total: int
    embedding: int
    output: int
    per_block: int
    blocks: int

    @property
    def largest_fsdp_group(self) -> int:
        """torchtitan shards embeddings, each block, and norm + output as separate FSDP2 groups."""
        return max(self.embedding, self.output, self.per_block)


def student_parameters(args: BaseModelArgs, model_cls: type = Student) -> ParameterCount:
    """Counts of a dense student (every block alike); MoE students are refused: their blocks differ (dense first
    blocks, expert counts) and their activations depend on routing, which this formula does not model."""
    if getattr(args, "moe_enabled", False) or hasattr(args, "n_dense_layers"):
        raise ValueError(
            f"{model_cls.__name__}: the memory estimate covers dense students (let_llama, let_qwen3), not MoE ones"
        )
    with torch.device("meta"):
        model = model_cls(args)
    block = next(iter(model.layers.values()))
    return ParameterCount(
        total=sum(p.numel() for p in model.parameters()),
        embedding=model.tok_embeddings.weight.numel(),
        output=model.output.weight.numel(),
        per_block=sum(p.numel() for p in block.parameters()),
        blocks=len(model.layers),
    )


def teacher_parameters(config: dict[str, Any]) -> int:
    """Parameters of a registered teacher as LET loads it (tied checkpoints have no separate LM head)."""
    with torch.device("meta"):
        model = teacher_architecture(config).build(config, TeacherOptions())
    return sum(p.numel() for p in model.parameters())


@dataclass
class MemorySetup:
    gpus: int = 8
    """FSDP2 shards the fp32 master weights, gradients and AdamW states this many ways."""
    gpu_capacity_gib: float = 79.1
    """An 80 GB H100/A100 reports about 79.1 GiB to torch."""
    seq_len: int = 2048
    overhead_gib: float = 3.0
    """CUDA context, NCCL buffers and allocator fragmentation: an assumption, not derived."""


@dataclass
class MemoryItem:
    name: str
    formula: str
    gib: dict[int, float]
    """local batch size -> GiB per GPU."""


SIGNALS = ("hidden", "logits")
"""The let.signal values the estimate has a term row for."""


def estimate_memory(
    student: BaseModelArgs,
    teacher_config: dict[str, Any],
    setup: MemorySetup,
    batch_sizes: tuple[int, ...],
    model_cls: type = Student,
    signal: str = "hidden",
    kd_chunk_tokens: int = 512,
) -> list[MemoryItem]:
    """Per-GPU memory of LET while aligning (the costly phase), full activation checkpointing, bf16 compute;
    signal = "logits" (SALT, RKD) replaces the alignment row by the distillation row."""
    if signal not in SIGNALS:
        raise ValueError(f"signal={signal!r}: this estimate has a term row for {', '.join(SIGNALS)}")
    params = student_parameters(student, model_cls)
    teacher_params = teacher_parameters(teacher_config)
    n, s, d, layers, vocab = setup.gpus, setup.seq_len, student.dim, student.n_layers, student.vocab_size
    d_t, ffn_t = teacher_config["hidden_size"], teacher_config["intermediate_size"]
    p = params.total

    def constant(value: float) -> dict[int, float]:
        return {b: value / GIB for b in batch_sizes}

    def per_batch(bytes_per_sample: float) -> dict[int, float]:
        return {b: b * bytes_per_sample / GIB for b in batch_sizes}

    items = [
        MemoryItem("student fp32 master weights, sharded", "4 P / N", constant(4 * p / n)),
        MemoryItem("student fp32 gradients, sharded", "4 P / N (FSDP2 reduces in fp32)", constant(4 * p / n)),
        MemoryItem("AdamW exp_avg + exp_avg_sq fp32, sharded", "8 P / N", constant(8 * p / n)),
        MemoryItem(
            "FSDP2 unsharded group + prefetched block",
            "G (2 + 2 + 4) + 2 P_block (G = largest group: bf16 weight, bf16 grad, fp32 reduce-scatter copy)",
            constant(params.largest_fsdp_group * 8 + 2 * params.per_block),
        ),
        MemoryItem("teacher weights bf16, replicated", "2 P_T", constant(2 * teacher_params)),
        MemoryItem(
            "teacher forward working set (no grad)", "2 b s (2 h_T + 3 ffn_T)", per_batch(2 * s * (2 * d_t + 3 * ffn_t))
        ),
        MemoryItem("full AC: saved block inputs bf16", "2 L b s h", per_batch(2 * layers * s * d)),
        MemoryItem("full AC: one block recomputed in backward", "34 b s h (Korthikanti, SDPA)", per_batch(34 * s * d)),
        MemoryItem("logits + cross-entropy", "10 b s V (bf16 logits, fp32 copy, fp32 grad)", per_batch(10 * s * vocab)),
        MemoryItem(
            "alignment term", "b s (2 h_T + 12 h) (teacher bf16, 3 fp32 width-h copies)",
            per_batch(s * (2 * d_t + 12 * d)),
        )
        if signal == "hidden"
        else MemoryItem(
            "distillation term (KL)",
            f"4 b s V + 32 min(c, b s) V (teacher logits bf16, bf16 gradient buffer, fp32 chunk of c = "
            f"{kd_chunk_tokens} tokens)",
            {b: sum(distillation_bytes(b * s, vocab, kd_chunk_tokens).values()) / GIB for b in batch_sizes},
        ),
        MemoryItem("CUDA context, NCCL, fragmentation (assumed)", "constant", constant(setup.overhead_gib * GIB)),
    ]
    return items


KD_CHUNK_FLOAT32_COPIES = 8
"""Float32 chunk x vocab tensors alive at once in one KL chunk (both log-softmaxes, the probabilities, the product,
and their gradients). Measured on CPU with float32 logits: 5 (live tensor storages counted under a dispatch mode,
both directions, 2k-4k tokens); bf16 logits on GPU add the float32 casts of the chunk; 8 keeps a margin."""


def distillation_bytes(tokens: int, vocab: int, chunk_tokens: int, logit_bytes: int = 2) -> dict[str, int]:
    """Peak memory the logit-distillation term (signal = "logits") adds per micro-batch of `tokens` tokens.

    teacher logits in the teacher's dtype (bf16 on GPU), the KL's gradient buffer in the student logits' dtype (bf16
    under mixed precision; let_components/terms/distillation.py) and one chunk's float32 working set. The teacher
    logits and the buffer together are one float32 copy's worth of bytes.
    """
    return {
        "teacher logits": logit_bytes * tokens * vocab,
        "gradient buffer": logit_bytes * tokens * vocab,
        "chunk working set": 4 * KD_CHUNK_FLOAT32_COPIES * min(chunk_tokens, tokens) * vocab,
    }


def total(items: list[MemoryItem]) -> dict[int, float]:
    batch_sizes = items[0].gib.keys()
    return {b: sum(item.gib[b] for item in items) for b in batch_sizes}


def llama_3_2_1b_config() -> dict[str, Any]:
    """config.json numbers of Llama-3.2-1B, the paper's teacher for the 7B student."""
    return TEACHER_SHAPES["llama-3.2-1b"].hf_config()


def format_estimate(
    model: str,
    flavor: str,
    teacher_config: dict[str, Any],
    teacher_name: str,
    setup: MemorySetup = MemorySetup(),
    batch_sizes: tuple[int, ...] = (1, 2),
    signal: str = "hidden",
) -> str:
    """Markdown: parameter counts and the per-GPU memory table of a dense student spec's flavor with a teacher."""
    spec = get_train_spec(model)
    student = dataclasses.replace(spec.model_args[flavor], vocab_size=teacher_config["vocab_size"])
    params = student_parameters(student, spec.model_cls)
    items = estimate_memory(student, teacher_config, setup, batch_sizes, spec.model_cls, signal)
    sums = total(items)
    columns = " | ".join(f"b={b} GiB" for b in batch_sizes)
    lines = [
        f"{model} {flavor} student (dim {student.dim}, {student.n_layers} blocks, {student.n_heads} heads, vocab "
        f"{student.vocab_size}): P = {params.total:,} parameters "
        f"(embedding {params.embedding:,}, output {params.output:,}, {params.blocks} x {params.per_block:,} per block)",
        f"Teacher {teacher_name}: P_T = {teacher_parameters(teacher_config):,} parameters",
        f"FSDP2 over N = {setup.gpus} GPUs, bf16 compute (mixed precision), fp32 master weights, full activation "
        f"checkpointing, seq_len s = {setup.seq_len}, local batch b; computed from shapes, not measured.",
        "",
        f"| per GPU | formula (bytes) | {columns} |",
        f"|---|---|{'---:|' * len(batch_sizes)}",
    ]
    for item in items:
        values = " | ".join(f"{item.gib[b]:.2f}" for b in batch_sizes)
        lines.append(f"| {item.name} | {item.formula} | {values} |")
    lines.append(f"| **total** | | {' | '.join(f'**{sums[b]:.1f}**' for b in batch_sizes)} |")
    let_only = [item for item in items if item.name.startswith(LET_ITEMS)]
    lines.append(
        "| of which LET adds while aligning (teacher + alignment or distillation rows) | | "
        + " | ".join(f"{sum(item.gib[b] for item in let_only):.2f}" for b in batch_sizes)
        + " |"
    )
    lines.append(
        f"| headroom on an 80 GB GPU ({setup.gpu_capacity_gib} GiB) | | "
        + " | ".join(f"{setup.gpu_capacity_gib - sums[b]:.1f}" for b in batch_sizes)
        + " |"
    )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class StageShare:
    """One pipeline stage of the student: its parameters and what it holds."""

    index: int
    parameters: int
    largest_group: int
    """The largest FSDP2 group of the stage (a block, the embedding or the output head)."""
    per_block: int
    blocks: int
    first: bool
    last: bool
    holds_block_k: bool


def stage_shares(args: BaseModelArgs, model_cls: type, pp: int, student_layer: int) -> list[StageShare]:
    """The student built on the meta device, cut into `pp` stages as torchtitan 0.2.2 cuts it by default
    (generate_llm_fqn_per_model_part, one stage per rank): each stage's parameters counted from its modules."""
    from torchtitan.distributed.pipeline_parallel import generate_llm_fqn_per_model_part

    with torch.device("meta"):
        model = model_cls(args)
    shares = []
    for index, names in enumerate(generate_llm_fqn_per_model_part(pp, args.n_layers, 1, 1)):
        sizes = {name: sum(p.numel() for p in model.get_submodule(name).parameters()) for name in names}
        blocks = [name for name in names if name.startswith("layers.")]
        shares.append(StageShare(
            index, sum(sizes.values()), max(sizes.values()), sizes[blocks[0]] if blocks else 0, len(blocks),
            index == 0, index == pp - 1, f"layers.{student_layer}" in names))
    return shares


def layout_estimate(student: BaseModelArgs, teacher_config: dict[str, Any], gpus: int, tp: int, pp: int,
                    student_layer: int, seq_len: int, local_batch: int, microbatch: int,
                    model_cls: type = Student) -> tuple[list[StageShare], dict[str, list[float]]]:
    """Per-GPU GiB of each pipeline stage of a LET run under TP x PP x FSDP (one stage per rank, 1F1B), while the
    teacher teaches: row name -> GiB per stage. FSDP shards over gpus / (tp pp); TP splits every weight and, with
    sequence parallel, the activations; the teacher sits, whole, on the ranks of block k's stage only."""
    dp = gpus // (tp * pp)
    if dp * tp * pp != gpus:
        raise ValueError(f"--gpus {gpus} is not a multiple of --tp {tp} x --pp {pp}")
    shares = stage_shares(student, model_cls, pp, student_layer)
    microbatch = microbatch if pp > 1 else local_batch  # no pipeline: the local batch is one micro-batch
    s, d, vocab = seq_len, student.dim, student.vocab_size
    d_t, ffn_t = teacher_config["hidden_size"], teacher_config["intermediate_size"]
    teacher = teacher_parameters(teacher_config)
    microbatches = local_batch // microbatch
    rows: dict[str, list[float]] = {}

    def row(name: str, value: Callable[[StageShare], float]) -> None:
        rows[name] = [value(share) / GIB for share in shares]

    in_flight = {share.index: min(microbatches, pp - share.index) for share in shares}  # 1F1B's warm-up depth
    row("weights + gradients + AdamW, fp32, sharded (16 P_stage / tp / dp)", lambda x: 16 * x.parameters / tp / dp)
    row("FSDP2 unsharded group + prefetched block", lambda x: (8 * x.largest_group + 2 * x.per_block) / tp)
    row("full AC: saved block inputs of the microbatches in flight (SP)",
        lambda x: 2 * x.blocks * microbatch * s * d / tp * in_flight[x.index])
    row("full AC: one block recomputed (SP)", lambda x: 34 * microbatch * s * d / tp if x.blocks else 0)
    row("logits + cross-entropy (last stage, loss parallel)", lambda x: 10 * microbatch * s * vocab / tp * x.last)
    row("teacher weights bf16 (block k's stage only)", lambda x: 2 * teacher * x.holds_block_k)
    row("teacher forward working set + its target for the step",
        lambda x: (2 * local_batch * s * (2 * d_t + 3 * ffn_t) + 2 * local_batch * s * d_t) * x.holds_block_k)
    row("alignment term per microbatch (SP)", lambda x: microbatch * s * (2 * d_t + 12 * d) / tp * x.holds_block_k)
    row("CUDA context, NCCL, fragmentation (assumed)", lambda x: MemorySetup.overhead_gib * GIB)
    return shares, rows


def format_layout_estimate(model: str, flavor: str, teacher_config: dict[str, Any], teacher_name: str, gpus: int,
                           tp: int, pp: int, student_layer: int, seq_len: int, local_batch: int,
                           microbatch: int) -> str:
    """Markdown: layout_estimate's table, a column per pipeline stage."""
    spec = get_train_spec(model)
    student = dataclasses.replace(spec.model_args[flavor], vocab_size=teacher_config["vocab_size"])
    shares, rows = layout_estimate(student, teacher_config, gpus, tp, pp, student_layer, seq_len, local_batch,
                                   microbatch, spec.model_cls)
    header = " | ".join(
        f"stage {x.index} ({x.blocks} blocks{', embedding' if x.first else ''}{', head' if x.last else ''}"
        f"{', block k + teacher' if x.holds_block_k else ''}) GiB" for x in shares)
    lines = [
        f"{model} {flavor} (P = {sum(x.parameters for x in shares):,}) with {teacher_name} "
        f"(P_T = {teacher_parameters(teacher_config):,}) on {gpus} GPUs: TP {tp} x PP {pp} x FSDP {gpus // (tp * pp)}, "
        f"block k = {student_layer}, seq_len {seq_len}, local batch {local_batch} in microbatches of {microbatch}; "
        "bf16 compute, full activation checkpointing, computed from shapes, not measured.",
        "",
        f"| per GPU | {header} |",
        f"|---|{'---:|' * len(shares)}",
    ]
    for name, values in rows.items():
        lines.append(f"| {name} | {' | '.join(f'{v:.2f}' for v in values)} |")
    totals = [sum(values[i] for values in rows.values()) for i in range(len(shares))]
    lines.append(f"| **total** | {' | '.join(f'**{t:.1f}**' for t in totals)} |")
    headroom = " | ".join(f"{MemorySetup.gpu_capacity_gib - t:.1f}" for t in totals)
    lines.append(f"| headroom on an 80 GB GPU | {headroom} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="let_llama", help="student spec ([model] name); dense students only")
    parser.add_argument("--flavor", default="7B")
    parser.add_argument("--teacher-config", help="a teacher's config.json (default: Llama-3.2-1B's numbers)")
    parser.add_argument("--gpus", type=int, default=MemorySetup.gpus)
    parser.add_argument("--signal", choices=SIGNALS, default="hidden",
                        help="[let] signal: hidden = LET's alignment, logits = SALT/RKD distillation")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2], help="local batch sizes b")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (with --pp: a column per stage)")
    parser.add_argument("--pp", type=int, default=1, help="pipeline-parallel degree (one stage per rank)")
    parser.add_argument("--student-layer", type=int, default=7, help="block k (let.student_layer) for --tp/--pp")
    parser.add_argument("--microbatch", type=int, default=1, help="pipeline microbatch size for --tp/--pp")
    args = parser.parse_args()
    if (args.tp > 1 or args.pp > 1) and args.signal != "hidden":
        parser.error(f"--signal {args.signal} with --tp/--pp: the per-stage estimate has the alignment rows only")
    if args.teacher_config is None:
        config, name = llama_3_2_1b_config(), "Llama-3.2-1B (tied embeddings)"
    else:
        config, name = json.loads(Path(args.teacher_config).read_text()), args.teacher_config
    try:
        if args.tp > 1 or args.pp > 1:
            print(format_layout_estimate(args.model, args.flavor, config, name, args.gpus, args.tp, args.pp,
                                         args.student_layer, MemorySetup.seq_len, max(args.batch_sizes),
                                         args.microbatch))
            return
        print(format_estimate(args.model, args.flavor, config, name, MemorySetup(gpus=args.gpus),
                              tuple(args.batch_sizes), args.signal))
    except ValueError as error:
        raise SystemExit(f"recipes.probes.memory: {error}") from None


if __name__ == "__main__":
    main()
