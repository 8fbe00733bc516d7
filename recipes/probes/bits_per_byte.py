"""Bits per byte of a teacher folder or a student checkpoint on a text file: LM quality across tokenizers.

    python -m recipes.probes.bits_per_byte --data outputs/replication/data/validation.jsonl \\
        --teacher outputs/replication/teachers/SmolLM2-135M-Instruct-Q4_1 [--json teacher.json]
    python -m recipes.probes.bits_per_byte --data outputs/replication/data/validation.jsonl \\
        --checkpoint outputs/replication/let_smollm2_s0/checkpoint/step-500 \\
        --config train_configs/replication_let_smollm2.toml [--json student.json]

Models with different vocabularies cannot be compared per token. Per byte they can: every document is tokenized by
the model's own tokenizer (with its BOS/EOS) and cut into windows of at most --window-bytes bytes of input text, the
same for every model (each token after the document's first is predicted once, by a window whose inputs cover at
most that many bytes), and
bits per byte = the summed CE in nats of the predicted tokens / (ln 2 x the UTF-8 bytes those tokens stand for),
special tokens in neither sum (let_components.tokens.per_byte.lm_loss_sums, the function the trainer uses too).
Windows fixed in TOKENS would favour the larger vocabulary, whose tokens carry more bytes of context each.
--max-tokens caps a window at the model's positions; a window the cap cuts short of its bytes is counted
(`windows_cut_by_tokens`, and a warning): raise the cap or lower --window-bytes until it is 0.
"""

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.components.tokenizer import BaseTokenizer

from let_components.config import LET, valid_choices
from let_components.teacher import TeacherOptions, TeacherSource, teacher_source
from let_components.tokens.per_byte import bits_per_byte, lm_loss_sums, text_byte_lengths
from let_components.tokens.tokenizers import load_tokenizer, student_tokenizer, tokenizer_source

from ..common import load_student, parse_job_config

Logits = Callable[[torch.Tensor], torch.Tensor]


def windows(ids: list[int], byte_lengths: np.ndarray, window_bytes: int,
            max_tokens: int) -> Iterator[tuple[list[int], list[int], bool]]:
    """(inputs, labels, cut by max_tokens) windows of one document: every token after the first is a label exactly
    once, and each window's inputs are the most tokens from its start that cover at most `window_bytes` bytes of
    text (`byte_lengths`: text_byte_lengths, 0 for special tokens) and number at most `max_tokens` (at least one)."""
    covered = np.concatenate([[0], np.cumsum(byte_lengths[np.asarray(ids, dtype=np.int64)])])
    start, last = 0, len(ids) - 1
    while start < last:
        by_bytes = int(np.searchsorted(covered, covered[start] + window_bytes, side="right")) - 1
        end = max(start + 1, min(by_bytes, start + max_tokens, last))
        yield ids[start:end], ids[start + 1:end + 1], end < min(by_bytes, last)
        start = end


def batches(texts: list[str], tokenizer: BaseTokenizer, byte_lengths: np.ndarray, window_bytes: int,
            max_tokens: int, batch_size: int, cut: list[int]):
    """[B, L] inputs and labels, shorter windows padded at the end (labels IGNORE_INDEX: causal models never read
    padding that comes after a position); `cut` counts the windows max_tokens cut short."""
    rows = []
    for text in texts:
        for inputs, labels, was_cut in windows(tokenizer.encode(text, add_bos=True, add_eos=True), byte_lengths,
                                               window_bytes, max_tokens):
            rows.append((inputs, labels))
            cut[0] += was_cut
    for first in range(0, len(rows), batch_size):
        group = rows[first:first + batch_size]
        width = max(len(inputs) for inputs, _ in group)
        inputs = torch.zeros(len(group), width, dtype=torch.long)
        labels = torch.full((len(group), width), IGNORE_INDEX, dtype=torch.long)
        for row, (x, y) in enumerate(group):
            inputs[row, :len(x)], labels[row, :len(y)] = torch.tensor(x), torch.tensor(y)
        yield inputs, labels


def measure(logits_of: Logits, tokenizer: BaseTokenizer, key: str, texts: list[str], window_bytes: int,
            max_tokens: int, batch_size: int = 8) -> dict[str, float]:
    """Bits per byte (and nats per token) of one model on `texts`, in windows of at most `window_bytes` bytes."""
    byte_lengths = text_byte_lengths(tokenizer, key)
    table = torch.from_numpy(byte_lengths)
    sums, cut = torch.zeros(3, dtype=torch.float64), [0]
    with torch.no_grad():
        for inputs, labels in batches(texts, tokenizer, byte_lengths, window_bytes, max_tokens, batch_size, cut):
            sums += lm_loss_sums(logits_of(inputs), labels, table).double()
    nats, n_bytes, tokens = sums.tolist()
    if cut[0]:
        print(f"warning: {cut[0]} windows reached --max-tokens {max_tokens} before --window-bytes {window_bytes}: "
              "their context is shorter than other models'", file=sys.stderr)
    return {"bits_per_byte": bits_per_byte(nats, n_bytes), "nats_per_token": nats / tokens,
            "bytes": int(n_bytes), "tokens": int(tokens), "bytes_per_token": n_bytes / tokens,
            "windows_cut_by_tokens": cut[0]}


def read_texts(path: Path, documents: int) -> list[str]:
    lines = path.read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    return texts[:documents] if documents > 0 else texts


def teacher_bits_per_byte(folder: str, texts: list[str], window_bytes: int, max_tokens: int,
                          backend: str = "auto") -> dict[str, Any]:
    """A teacher folder as a run builds it (its TeacherSource, with `backend` as let.teacher_backend)."""
    source = TeacherSource(folder, Path(folder), backend)
    teacher = source.load("cpu", torch.float32, TeacherOptions(max_seq_len=max_tokens))
    result = measure(lambda x: teacher.logits(teacher(x)), load_tokenizer(folder, "--teacher"), "--teacher",
                     texts, window_bytes, max_tokens)
    return {"model": folder, "backend": source.backend, **result}


def student_bits_per_byte(config: str, checkpoint: Path, texts: list[str], window_bytes: int, max_tokens: int,
                          overrides: list[str]) -> dict[str, Any]:
    job_config = parse_job_config(config, overrides)
    student = load_student(job_config, checkpoint)
    teacher = teacher_source(job_config)
    key = tokenizer_source(job_config, teacher)[1]
    result = measure(student, student_tokenizer(job_config, teacher), key, texts, window_bytes, max_tokens)
    return {"model": str(checkpoint), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="jsonl file with a 'text' field per document")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--teacher", help="Hugging Face teacher folder")
    model.add_argument("--checkpoint", type=Path, help="student checkpoint folder (step-N); needs --config")
    parser.add_argument("--config", help="the student's train config (model, flavor, tokenizer)")
    parser.add_argument("--teacher-backend", choices=valid_choices(LET, "teacher_backend"), default="auto",
                        help="--teacher: what builds it, as let.teacher_backend (default auto)")
    parser.add_argument("--window-bytes", type=int, default=768,
                        help="bytes of input text per window, the same for every model compared (default 768)")
    parser.add_argument("--max-tokens", type=int, default=256,
                        help="tokens per window at most, within the model's positions (default 256)")
    parser.add_argument("--documents", type=int, default=0, help="only the first N documents (0: all)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args, overrides = parser.parse_known_args()
    if args.window_bytes < 1 or args.max_tokens < 1:
        parser.error(f"--window-bytes {args.window_bytes} and --max-tokens {args.max_tokens} must be >= 1")
    texts = read_texts(args.data, args.documents)
    if args.teacher:
        result = teacher_bits_per_byte(args.teacher, texts, args.window_bytes, args.max_tokens, args.teacher_backend)
    elif not args.config:
        sys.exit("--checkpoint needs --config")
    else:
        result = student_bits_per_byte(args.config, args.checkpoint, texts, args.window_bytes, args.max_tokens,
                                       overrides)
    result |= {"data": str(args.data), "documents": len(texts), "window_bytes": args.window_bytes,
               "max_tokens": args.max_tokens}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not math.isfinite(result["bits_per_byte"]):
        sys.exit(f"non-finite bits per byte: {result['bits_per_byte']}")


if __name__ == "__main__":
    main()
