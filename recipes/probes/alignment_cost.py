"""What the byte-aligned teacher side (let.token_alignment = "bytes") costs the data pipeline, per training step.

    python -m recipes.probes.alignment_cost --config train_configs/replication_let_smollm2.toml [--steps 30]

Times torchtitan's text dataset and ByteAlignedTextDataset producing the same `--steps` x training.local_batch_size
windows (single process, as with training.dataloader.num_workers = 0, where it is on the step's critical path),
and reports the extra milliseconds per step and per 1,000 student tokens, and how many student positions have a
teacher target and how many lost theirs to let.teacher_seq_len.
"""

import time
from itertools import islice

import torch
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

from let_components.teacher import teacher_source
from let_components.tokens import token_alignment
from let_components.tokens.tokenizers import student_tokenizer

from ..common import parse_probe, probe_parser


def timed(dataset, windows: int) -> tuple[float, list]:
    start = time.perf_counter()
    samples = list(islice(iter(dataset), windows))
    return time.perf_counter() - start, samples


def main() -> None:
    parser = probe_parser(__doc__)
    parser.add_argument("--steps", type=int, default=30)
    args, job_config = parse_probe(parser)
    training, alignment, teacher = job_config.training, token_alignment(job_config), teacher_source(job_config)
    if alignment.one_to_one:
        raise SystemExit(f"--config {args.config}: {alignment.describe(job_config)} has no teacher side to time "
                         "(this measures let.token_alignment = 'bytes')")
    tokenizer = student_tokenizer(job_config, teacher)
    windows = args.steps * training.local_batch_size
    plain = HuggingFaceTextDataset(training.dataset, training.dataset_path, tokenizer, training.seq_len)
    aligned = alignment.text_dataset(job_config, tokenizer, training.dataset, training.dataset_path, training.seq_len,
                                     teacher)
    plain_s, _ = timed(plain, windows)
    aligned_s, samples = timed(aligned, windows)
    index = torch.stack([x["teacher_index"] for x, _ in samples])
    lost = sum(int(x["teacher_lost"]) for x, _ in samples)
    length = torch.stack([x["teacher_length"] for x, _ in samples]).float()
    per_step = lambda seconds: 1000 * seconds / args.steps  # noqa: E731
    tokens = windows * training.seq_len
    print(f"{args.steps} steps x {training.local_batch_size} windows of {training.seq_len} tokens "
          f"(teacher windows of {alignment.teacher_seq_len(job_config)}):")
    print(f"  torchtitan's dataset   {per_step(plain_s):8.1f} ms/step")
    print(f"  byte-aligned dataset   {per_step(aligned_s):8.1f} ms/step  "
          f"(+{per_step(aligned_s - plain_s):.1f} ms/step, "
          f"+{1000 * 1000 * (aligned_s - plain_s) / tokens:.2f} ms per 1,000 student tokens, "
          f"{aligned_s / plain_s:.2f}x)")
    print(f"  student positions with a teacher target: {(index >= 0).float().mean().item():.4f}; lost to "
          f"let.teacher_seq_len: {lost} of {index.numel()}; teacher tokens per window: {length.mean().item():.1f} "
          f"(max {int(length.max())})")


if __name__ == "__main__":
    main()
