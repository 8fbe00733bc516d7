import base64
import json
import shutil

import pytest
from torchtitan.config import ConfigManager

from let_components.config import LETConfigError
from let_components.tokenizer import TiktokenTokenizer, check_tokenizer, load_tokenizer
from tests.helpers import ASSETS, REPO


def _job_config(*args: str):
    return ConfigManager().parse_args(["--job.config_file", str(REPO / "train_configs/let_debug.toml"), *args])


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


def _tiny_tiktoken_file(path):
    """256 byte tokens plus the merges 'th', 'he', 'the' in tiktoken's `<base64> <rank>` format."""
    tokens = [bytes([b]) for b in range(256)] + [b"th", b"he", b"the"]
    path.write_text("".join(f"{base64.b64encode(t).decode()} {rank}\n" for rank, t in enumerate(tokens)))
    return path


def test_tiktoken_bpe_file_with_llama3_special_tokens(tmp_path):
    (tmp_path / "original").mkdir()
    _tiny_tiktoken_file(tmp_path / "original" / "tokenizer.model")
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


def test_tokenizer_larger_than_teacher_vocabulary_is_refused():
    tokenizer = load_tokenizer(ASSETS / "teacher_debug")
    with pytest.raises(LETConfigError, match="tokenizer has 4096 ids but the teacher .* has 1000 embedding rows"):
        check_tokenizer(tokenizer, _job_config(), teacher_vocab_size=1000)


def test_a_different_tokenizer_is_refused_unless_allowed(tmp_path):
    (tmp_path / "original").mkdir()
    _tiny_tiktoken_file(tmp_path / "original" / "tokenizer.model")
    other = load_tokenizer(tmp_path)
    with pytest.raises(LETConfigError, match="differs from the teacher's"):
        check_tokenizer(other, _job_config(), teacher_vocab_size=4096)
    check_tokenizer(other, _job_config("--let.allow_tokenizer_mismatch"), teacher_vocab_size=4096)
    # the same content under another path is the teacher's tokenizer
    shutil.copytree(ASSETS / "teacher_debug", tmp_path / "copy")
    check_tokenizer(load_tokenizer(tmp_path / "copy"), _job_config(), teacher_vocab_size=4096)
