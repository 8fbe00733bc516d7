"""Build the sample corpus and byte-level BPE tokenizer offline and reproducibly.

The text (stdlib docstrings and the ``pydoc_data`` reference topics) ships with every
CPython, so smoke tests and tiny training runs need no network or third-party data.
Output depends on the Python minor version; build_info.json records the one used.

    python recipes/assets/build_sample_data.py [--out assets] [--vocab-size 4096] [--skip-tokenizer]
"""

import argparse
import ast
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import sys
import sysconfig
import warnings
from pathlib import Path

# The Rust trainer merges counts from worker threads; one thread keeps it reproducible.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

STDLIB_DIR = Path(os.path.realpath(sysconfig.get_paths()["stdlib"]))
# Importing these has side effects (GUI, grammar cache files, setuptools' distutils shim),
# so their docstrings are read from source with ast instead.
PARSE_ONLY = ("idlelib", "tkinter", "turtle", "turtledemo", "lib2to3", "distutils")
SKIP = ("this", "antigravity", "test", "readline", *PARSE_ONLY)
NON_DOC_PARTS = ("__main__", "test", "tests", "idle_test")  # scripts that run, test suites
SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|pad|>")  # ids 0, 1, 2
VAL_EVERY = 20  # ~5% of documents go to validation


def excluded(name: str) -> bool:
    """SKIP trees, test packages and ``__main__`` scripts."""
    parts = name.split(".")
    return parts[0] in SKIP or any(p in NON_DOC_PARTS for p in parts)


def try_import(name: str):
    """Import or return None: optional C extensions and other platforms' modules fail."""
    try:
        return importlib.import_module(name)
    except Exception:  # any failure means "not available here"
        return None


def is_stdlib(module) -> bool:
    """True for built-in modules and files under the stdlib dir, never site-packages."""
    path = getattr(module, "__file__", None)
    if path is None:
        return True
    path = os.path.realpath(path)
    return path.startswith(f"{STDLIB_DIR}{os.sep}") and "site-packages" not in path


def module_names() -> list[str]:
    """sys.stdlib_module_names plus submodules; never consults third-party packages."""
    names: set[str] = set()
    todo = sorted(n for n in sys.stdlib_module_names if not excluded(n))
    while todo:
        name = todo.pop(0)
        names.add(name)
        module = try_import(name)
        if module is not None and hasattr(module, "__path__") and is_stdlib(module):
            subs = pkgutil.iter_modules(module.__path__, f"{name}.")
            todo.extend(sorted(i.name for i in subs if not excluded(i.name)))
    return sorted(names)


def own_doc(obj, name: str = "") -> str:
    """Docstring defined on obj itself; inherited or ``object`` boilerplate would repeat."""
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or doc == getattr(getattr(object, name, None), "__doc__", None):
        return ""
    return inspect.getdoc(obj) or ""


def join_docs(docs: list[str]) -> str:
    """One document: non-empty docstrings in order, exact repeats dropped."""
    return "\n\n".join(dict.fromkeys(d.strip() for d in docs if d and d.strip()))


def imported_text(name: str) -> str:
    """Module docstring, then classes/functions defined there and their members, by name."""
    module = try_import(name)
    if module is None or not is_stdlib(module):
        return ""
    docs = [own_doc(module)]
    for _, obj in sorted(vars(module).items()):
        if getattr(obj, "__module__", None) != name:
            continue  # re-exported: documented by the module that defines it
        if inspect.isclass(obj) or inspect.isroutine(obj):
            docs.append(own_doc(obj))
        if inspect.isclass(obj):
            for attr, member in sorted(vars(obj).items()):
                documented = inspect.isroutine(member) or inspect.isdatadescriptor(member)
                if documented and attr not in ("__dict__", "__weakref__"):
                    docs.append(own_doc(member, attr))
    return join_docs(docs)


def parsed_docs() -> list[dict]:
    """Docstrings of the PARSE_ONLY trees, read with ast so nothing is executed."""
    roots = [p for top in PARSE_ONLY for p in (STDLIB_DIR / top, STDLIB_DIR / f"{top}.py")]
    files = sorted(f for p in roots for f in ([p] if p.is_file() else p.rglob("*.py")))
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = []
    for path in files:
        parts = path.relative_to(STDLIB_DIR).with_suffix("").parts
        if not any(p in NON_DOC_PARTS for p in parts):
            tree = ast.parse(path.read_bytes())
            text = join_docs([ast.get_docstring(n) or "" for n in ast.walk(tree) if isinstance(n, nodes)])
            docs.append({"text": text, "source": ".".join(parts).removesuffix(".__init__")})
    return docs


def collect_docs() -> list[dict]:
    """Every distinct document (first source wins), sorted by source for a stable order."""
    with warnings.catch_warnings():  # deprecated modules warn on import and attribute access
        warnings.simplefilter("ignore")
        docs = [{"text": imported_text(n), "source": n} for n in module_names()]
    docs += parsed_docs()
    topics = getattr(try_import("pydoc_data.topics"), "topics", {})
    docs += [{"text": text.strip(), "source": f"pydoc_data.topics:{key}"} for key, text in topics.items()]
    unique = {d["text"]: d for d in sorted(docs, key=lambda d: d["source"], reverse=True) if d["text"]}
    return sorted(unique.values(), key=lambda d: d["source"])


def build_corpus(out: Path) -> dict[str, list[dict]]:
    """Write train/validation JSONL, split by a hash of the source so it is stable."""
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    for doc in collect_docs():
        digest = int(hashlib.sha256(doc["source"].encode()).hexdigest(), 16)
        splits["validation" if digest % VAL_EVERY == 0 else "train"].append(doc)
    out.mkdir(parents=True, exist_ok=True)
    for split, docs in splits.items():
        with open(out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(doc, ensure_ascii=False) + "\n" for doc in docs)
    return splits


def write_corpus_readme(out: Path, splits: dict[str, list[dict]], command: str) -> None:
    """Record sizes, provenance, the rebuild command and the license next to the data."""
    version = ".".join(map(str, sys.version_info[:3]))
    info = {"python": "{}.{}".format(*sys.version_info[:2]), "python_full": version}
    (out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    sizes = {s: (out / f"{s}.jsonl").stat().st_size for s in splits}
    rows = "\n".join(f"| {s}.jsonl | {len(d)} | {sizes[s]} |" for s, d in splits.items())
    rows += f"\n| total | {sum(map(len, splits.values()))} | {sum(sizes.values())} |"
    (out / "README.md").write_text(f"""# Sample corpus

Real English text for smoke tests and tiny training runs, built offline by
`recipes/assets/build_sample_data.py` from text shipped with CPython: one document per importable
standard library module (its docstring, then the `inspect.getdoc` docstrings of the classes
and functions defined in it and of their methods, sorted by name); one per module of
{", ".join(PARSE_ONLY)} (read with `ast`: importing them has side effects);
one per reference-manual topic of `pydoc_data.topics` (the text behind `help("topics")`).
Lines are `{{"text": ..., "source": ...}}`; a document is in validation when the sha256 of
its `source` is divisible by {VAL_EVERY} (about 5%).

| file | documents | bytes |
|---|---|---|
{rows}

Rebuilt with `{command}` on Python {version} ({sys.platform}); see `build_info.json`.
Other Python minor versions give different text, and interpreters built without some
optional C extension modules give a few fewer documents.

## Attribution and license

The text is taken from the CPython standard library docstrings and the Python documentation
in `pydoc_data`, Copyright (c) Python Software Foundation; All Rights Reserved, distributed
under the PSF License Agreement (Python Software Foundation License Version 2),
https://docs.python.org/3/license.html. It is unmodified apart from whitespace clean-up and
concatenation; the license permits redistributing derivative works that keep this notice.
""", encoding="utf-8")


def train_tokenizer(train_path: Path, out: Path, vocab_size: int) -> None:
    """Byte-level BPE on the train split; torchtitan adds bos/eos, so no post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    with open(train_path, encoding="utf-8") as f:
        tok.train_from_iterator([json.loads(line)["text"] for line in f], trainer=trainer)
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2]
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    special = dict(zip(("bos_token", "eos_token", "pad_token"), SPECIAL_TOKENS, strict=True))
    config = {**special, "add_bos_token": False, "add_eos_token": False,
              "clean_up_tokenization_spaces": False, "model_max_length": 2048,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    for name, data in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        (out / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"tokenizer: {out} (vocab size {tok.get_vocab_size()})")


def check_round_trip(tokenizer_dir: Path, validation_path: Path) -> None:
    """decode(encode(x)) must be lossless, or training text would silently change."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    with open(validation_path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    ids = [tok.encode(text).ids for text in texts]
    bad = [i for i, (text, t) in enumerate(zip(texts, ids, strict=True)) if tok.decode(t) != text]
    print(f"round trip: {len(texts) - len(bad)}/{len(texts)} validation docs exact, "
          f"{sum(map(len, ids))} tokens for {sum(map(len, texts))} chars")
    assert not bad, f"round trip failed for validation docs {bad}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="assets", help="writes sample_corpus/, tokenizer/")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--skip-tokenizer", action="store_true", help="only build the corpus")
    args = parser.parse_args()
    out, corpus = Path(args.out), Path(args.out) / "sample_corpus"
    splits = build_corpus(corpus)
    command = f"python recipes/assets/build_sample_data.py --out {args.out} --vocab-size {args.vocab_size}"
    command += " --skip-tokenizer" * args.skip_tokenizer
    write_corpus_readme(corpus, splits, command)
    if not args.skip_tokenizer:
        train_tokenizer(corpus / "train.jsonl", out / "tokenizer", args.vocab_size)
        check_round_trip(out / "tokenizer", corpus / "validation.jsonl")
    print(f"built with Python {sys.version.split()[0]}")
    for split, docs in splits.items():
        print(f"{split}: {len(docs)} documents, {(corpus / f'{split}.jsonl').stat().st_size} bytes")


if __name__ == "__main__":
    main()
