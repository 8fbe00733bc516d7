"""The committed sample corpus and tokenizer: present, well-formed, loadable, reproducible."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ASSETS, REPO

CORPUS = ASSETS / "sample_corpus"
TOKENIZER = ASSETS / "tokenizer"
SPLITS = ("train", "validation")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict]]:
    return {split: read_jsonl(CORPUS / f"{split}.jsonl") for split in SPLITS}


def test_corpus_files_exist_and_are_big_enough():
    for name in ("train.jsonl", "validation.jsonl", "README.md", "build_info.json"):
        assert (CORPUS / name).is_file(), name
    total = sum((CORPUS / f"{split}.jsonl").stat().st_size for split in SPLITS)
    assert total >= 2_500_000, f"sample corpus is only {total} bytes"


def test_corpus_is_well_formed_jsonl(corpus):
    for split, docs in corpus.items():
        assert len(docs) >= (20 if split == "validation" else 500), split
        for doc in docs:
            assert set(doc) == {"text", "source"}
            assert isinstance(doc["text"], str) and doc["text"].strip(), doc["source"]
            assert isinstance(doc["source"], str) and doc["source"]
        sources = [doc["source"] for doc in docs]
        assert len(set(sources)) == len(sources), f"duplicate sources in {split}"
    n_val, n_all = len(corpus["validation"]), sum(map(len, corpus.values()))
    assert 0.02 < n_val / n_all < 0.10, "validation should be ~5% of the documents"


def test_validation_is_disjoint_from_train(corpus):
    train, validation = ({doc["source"] for doc in corpus[s]} for s in SPLITS)
    assert not train & validation
    train_texts = {doc["text"] for doc in corpus["train"]}
    assert not any(doc["text"] in train_texts for doc in corpus["validation"])


def test_readme_records_sizes_and_license():
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for split in SPLITS:
        assert f"| {split}.jsonl |" in readme and str((CORPUS / f"{split}.jsonl").stat().st_size) in readme
    assert "Python Software Foundation License Version 2" in readme
    assert "python recipes/assets/build_sample_data.py" in readme


def test_tokenizer_loads_in_torchtitan(corpus):
    from torchtitan.components.tokenizer import HuggingFaceTokenizer

    tok = HuggingFaceTokenizer(str(TOKENIZER))
    assert (tok.bos_id, tok.eos_id) == (0, 1)
    assert tok.get_vocab_size() == 4096
    ids = tok.encode("hello world", add_bos=True, add_eos=True)
    assert ids[0] == 0 and ids[-1] == 1 and ids.count(0) == 1 and ids.count(1) == 1
    assert tok.encode("hello world") == ids[1:-1], "tokenizer.json must not add bos/eos itself"
    text = corpus["validation"][0]["text"]
    assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text
    assert tok.decode(tok.encode("  Two  spaces,\ttabs\nand newlines.\n")) == "  Two  spaces,\ttabs\nand newlines.\n"


def test_tokenizer_loads_in_transformers(corpus):
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(str(TOKENIZER))
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2)
    text = corpus["validation"][-1]["text"]
    ids = tok(text)["input_ids"]
    assert 0 not in ids and 1 not in ids
    assert tok.decode(ids) == text


def _first_difference(rebuilt: list[str], committed: list[str]) -> str:
    """The first document (line) that differs, by its source, or the difference in counts."""
    for index, (ours, theirs) in enumerate(zip(rebuilt, committed, strict=False)):
        if ours != theirs:
            return f"document {index} ({json.loads(theirs)['source']}) differs"
    return f"{len(rebuilt)} documents rebuilt against {len(committed)} committed"


def test_rebuild_reproduces_committed_corpus(tmp_path):
    """Byte for byte, compared by digest: a mismatch fails in milliseconds naming the first differing document
    (an assertion on two 2.5 MB strings makes pytest diff them for hours under CI=true). The corpus is CPython's
    docstrings, which change between patch releases, so it is rebuilt only on the exact Python that built it."""
    built_with = json.loads((CORPUS / "build_info.json").read_text())["python_full"]
    running = "{}.{}.{}".format(*sys.version_info[:3])
    if running != built_with:
        pytest.skip(f"corpus was built with Python {built_with}, running {running}: stdlib docstrings differ")
    script = REPO / "recipes" / "assets" / "build_sample_data.py"
    cmd = [sys.executable, str(script), "--out", str(tmp_path), "--skip-tokenizer"]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, timeout=120)
    for split in SPLITS:
        rebuilt = (tmp_path / "sample_corpus" / f"{split}.jsonl").read_bytes()
        committed = (CORPUS / f"{split}.jsonl").read_bytes()
        if hashlib.sha256(rebuilt).digest() != hashlib.sha256(committed).digest():
            difference = _first_difference(rebuilt.decode().splitlines(), committed.decode().splitlines())
            pytest.fail(f"{split}.jsonl is not reproducible: {difference}", pytrace=False)


def test_a_corpus_mismatch_names_its_first_differing_document():
    committed = [json.dumps({"text": "a", "source": "x.py"}), json.dumps({"text": "b", "source": "y.py"})]
    assert _first_difference([committed[0], json.dumps({"text": "c", "source": "y.py"})], committed) == (
        "document 1 (y.py) differs"
    )
    assert _first_difference(committed[:1], committed) == "1 documents rebuilt against 2 committed"
