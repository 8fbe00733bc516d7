import json
import shutil
from itertools import islice

import pytest
import torch

from let_components.config import LETConfigError
from let_components.teacher import TOKENIZER_COPY, teacher_source
from let_components.tokens import token_alignment
from let_components.tokens.tokenizers import TiktokenTokenizer, check_tokenizer_fits, load_tokenizer, tokenizer_source
from tests.support import ASSETS
from tests.support.config import parse_config
from tests.support.tokenizers import QWEN_SPECIAL, save_qwen_tokenizer, save_sentencepiece_tokenizer, save_tiktoken_file


def _job_config(*args: str):
    return parse_config("train_configs/let_debug.toml", *args)


def check_tokenizer(tokenizer, job_config, student_vocab_size: int) -> None:
    """What the pre-start checks ask of the student's tokenizer (prestart.check_teacher_side): every id has an
    embedding row, and it is the one the token alignment trains in."""
    teacher = teacher_source(job_config)
    check_tokenizer_fits(tokenizer, tokenizer_source(job_config, teacher), student_vocab_size)
    token_alignment(job_config).check_tokenizers(job_config, teacher, tokenizer, teacher_needed=True)


def test_project_tokenizer_has_distinct_bos_and_eos():
    tokenizer = load_tokenizer(ASSETS / "teacher_debug")
    assert (tokenizer.bos_id, tokenizer.eos_id) == (0, 1)
    ids = tokenizer.encode("Return the sum.", add_bos=True, add_eos=True)
    assert ids[0] == 0 and ids[-1] == 1 and tokenizer.decode(ids[1:-1]) == "Return the sum."


def test_gpt2_style_tokenizer_with_one_bos_eos_token_gets_an_eos_id(tmp_path):
    shutil.copy(ASSETS / "tokenizer" / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|end_of_text|>",
                                                               "eos_token": "<|end_of_text|>"}))
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.bos_id == tokenizer.eos_id == 1
    ids = tokenizer.encode("a b", add_bos=True, add_eos=True)
    assert ids[0] == 1 and ids[-1] == 1  # documents are still separated


def test_tiktoken_bpe_file_with_llama3_special_tokens(tmp_path):
    save_tiktoken_file(tmp_path / "original" / "tokenizer.model")
    tokenizer = load_tokenizer(tmp_path)
    assert isinstance(tokenizer, TiktokenTokenizer)
    assert (tokenizer.bos_id, tokenizer.eos_id) == (259, 260)
    assert tokenizer.get_vocab_size() == 259 + 256
    ids = tokenizer.encode("the theme", add_bos=True, add_eos=True)
    assert ids[0] == 259 and ids[-1] == 260 and 258 in ids  # 'the' merged
    assert tokenizer.decode(ids[1:-1]) == "the theme"


def test_missing_tokenizer_names_the_key(tmp_path):
    with pytest.raises(LETConfigError, match="model.hf_assets_path="):
        load_tokenizer(tmp_path)


def test_tokenizer_larger_than_the_student_vocabulary_is_refused():
    tokenizer = load_tokenizer(ASSETS / "teacher_debug")
    with pytest.raises(LETConfigError, match="tokenizer has 4096 ids but the student has 1000 embedding rows"):
        check_tokenizer(tokenizer, _job_config(), student_vocab_size=1000)


def test_a_different_tokenizer_is_refused_unless_aligned_by_bytes(tmp_path):
    save_tiktoken_file(tmp_path / "original" / "tokenizer.model")
    other = load_tokenizer(tmp_path)
    with pytest.raises(LETConfigError, match="differs from the teacher's .* let.token_alignment = 'bytes'"):
        check_tokenizer(other, _job_config(), student_vocab_size=4096)
    check_tokenizer(other, _job_config("--let.token_alignment", "bytes"), student_vocab_size=4096)
    # the same content under another path is the teacher's tokenizer
    shutil.copytree(ASSETS / "teacher_debug", tmp_path / "copy")
    check_tokenizer(load_tokenizer(tmp_path / "copy"), _job_config(), student_vocab_size=4096)


def test_qwen_style_tokenizer_json_loads_with_eos_and_no_bos(tmp_path):
    """Byte-level BPE behind Qwen2's split regex, specials after the merges, tokenizer_config with bos_token null."""
    from transformers import AutoTokenizer

    folder = save_qwen_tokenizer(tmp_path / "qwen", vocab_size=512)
    tokenizer = load_tokenizer(folder)
    assert tokenizer.get_vocab_size() == 512
    assert tokenizer.bos_id is None and tokenizer.eos_id == 509  # <|endoftext|>, the first special token
    assert [tokenizer.get_vocab()[t] for t in QWEN_SPECIAL] == [509, 510, 511]
    text = "Return the sum of 12 values.\n"
    ids = tokenizer.encode(text, add_bos=True, add_eos=True)
    assert ids[-1] == 509 and 509 not in ids[:-1]  # documents end in eos; nothing is prepended
    assert ids[:-1] == AutoTokenizer.from_pretrained(folder)(text)["input_ids"]  # transformers' Qwen2Tokenizer
    assert tokenizer.decode(ids[:-1]) == text


def test_tokenizer_comes_from_the_teacher_unless_hf_assets_path_is_set(tmp_path):
    teacher = ASSETS / "teacher_debug"
    job_config = _job_config("--let.teacher_path", str(teacher), "--job.dump_folder", str(tmp_path / "job"))
    assert tokenizer_source(job_config, teacher_source(job_config)) == (str(teacher), "let.teacher_path")
    explicit = _job_config("--let.teacher_path", str(teacher), "--model.hf_assets_path", str(ASSETS / "tokenizer"))
    assert tokenizer_source(explicit, teacher_source(explicit)) == (str(ASSETS / "tokenizer"), "model.hf_assets_path")
    # a job resumed after stop_step whose teacher folder is gone reads the copy it kept
    teacher_source(job_config).keep(needed=False)
    gone = _job_config("--let.teacher_path", str(tmp_path / "gone"), "--job.dump_folder", str(tmp_path / "job"))
    folder, key = tokenizer_source(gone, teacher_source(gone))
    assert (folder, key) == (str(tmp_path / "job" / TOKENIZER_COPY), "let.teacher_path (this job's copy)")
    assert load_tokenizer(folder).get_vocab() == load_tokenizer(teacher).get_vocab()


@pytest.mark.parametrize("window_bos", [True, False])
def test_a_probe_reads_the_teacher_windows_the_run_trained_on(tmp_path, window_bos):
    """tokens.text_dataset (what the probes read, e.g. recipes.probes.similarity) gives the byte-aligned windows of
    the training dataloader, teacher BOS included or not as let.teacher_window_bos says (a Gemma-style teacher)."""
    from let_components.tokens import build_dataloader

    teacher = save_sentencepiece_tokenizer(tmp_path / "teacher", style="gemma")
    job_config = _job_config("--let.token_alignment", "bytes", "--let.teacher_path", str(teacher),
                             "--job.dump_folder", str(tmp_path / "run"),
                             *(() if window_bos else ("--let.no-teacher_window_bos",)))
    student = load_tokenizer(ASSETS / "teacher_debug")
    teacher_side = teacher_source(job_config)
    training = build_dataloader(1, 0, student, job_config, infinite=False, teacher=teacher_side).dataset
    probe = token_alignment(job_config).text_dataset(job_config, student, job_config.training.dataset,
                                                     job_config.training.dataset_path, job_config.training.seq_len,
                                                     teacher_side)
    bos, starts = load_tokenizer(teacher).bos_id, []
    for (want, _), (got, _) in islice(zip(training, probe, strict=False), 8):
        assert want.keys() == got.keys() and all(torch.equal(want[key], got[key]) for key in want)
        starts.append(got["teacher_input"][0].item() == bos)
    assert len(starts) == 8 and all(starts) == window_bos  # every window starts with BOS only when asked
