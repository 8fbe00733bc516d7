"""Shared test helpers: tiny random Hugging Face checkpoints (transformers is the test-only reference), training runs
through run_train.sh and reading their logs."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from recipes.hf_folder import copy_tokenizer_files
from recipes.run_logs import read_scalars

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "assets"


def save_llama(folder: Path, tokenizer_dir: Path | None = None, **config_kwargs) -> Path:
    """A random-weight LlamaForCausalLM saved with save_pretrained (+ the tokenizer files, if given)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    defaults = dict(
        vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(LlamaConfig(**{**defaults, **config_kwargs})).eval()
    model.save_pretrained(folder)
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, folder)
    return folder


def save_qwen(folder: Path, model_type: str, tokenizer_dir: Path | None = None, **config_kwargs) -> Path:
    """A random-weight Qwen2ForCausalLM / Qwen3ForCausalLM (model_type "qwen2" / "qwen3") saved with save_pretrained."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    defaults = dict(
        vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=1_000_000.0, tie_word_embeddings=False,
    )
    config = AutoConfig.for_model(model_type, **{**defaults, **config_kwargs})
    model = AutoModelForCausalLM.from_config(config).eval()
    # transformers initialises norms to 1 and biases to 0: randomise them so the key mapping is really tested
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1 + 0.2 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.2 * torch.randn_like(param))
    model.save_pretrained(folder)
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, folder)
    return folder


QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def save_qwen_tokenizer(folder: Path, vocab_size: int = 512) -> Path:
    """A Qwen-style tokenizer.json in miniature: byte-level BPE behind Qwen2's split regex, NFC, the <|endoftext|> /
    <|im_start|> / <|im_end|> special tokens after the merges, and Qwen's tokenizer_config.json (no bos token,
    eos <|endoftext|>). Trained on the first 200 documents of the sample corpus (no hub in tests)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    lines = (ASSETS / "sample_corpus" / "train.jsonl").read_text().splitlines()[:200]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN_SPECIAL), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((json.loads(line)["text"] for line in lines), trainer)
    tokenizer.add_special_tokens(list(QWEN_SPECIAL))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    first = tokenizer.token_to_id(QWEN_SPECIAL[0])
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "add_prefix_space": False, "errors": "replace", "split_special_tokens": False,
        "added_tokens_decoder": {str(first + i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                                 "normalized": False, "single_word": False}
                                 for i, t in enumerate(QWEN_SPECIAL)},
    }))
    return folder


def rewrite_config(folder: Path, **changes) -> None:
    """Edit config.json in place (None deletes a key): e.g. turn transformers 5.x keys into 4.x ones."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config, indent=2))


TINY_BATCH = ("--training.seq_len", "64", "--training.local_batch_size", "2")
"""Two sequences of 64 tokens per rank and step: for runs that test the wiring and the step, not learning."""
SHORT_RUN = ("--metrics.log_freq", "1", "--validation.no-enable", "--metrics.enable_tensorboard")
"""Every step logged, no validation, TensorBoard on (full-precision losses for tb_scalars)."""


def _train_env(ngpu: int, env: dict | None) -> dict:
    """The environment of a run_train.sh subprocess: CPU ranks, launched by the interpreter that runs the tests
    (not by whichever python or torchrun is first on PATH), with the repository importable."""
    run_env = {**os.environ, "NGPU": str(ngpu), "PYTHONUNBUFFERED": "1", "PYTHON": sys.executable, **(env or {})}
    run_env["PYTHONPATH"] = str(REPO) + os.pathsep + run_env.get("PYTHONPATH", "")
    return run_env


def run_train(*args: str, ngpu: int = 1, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """./run_train.sh with CPU ranks; returns the finished process (stdout+stderr in .stdout)."""
    return subprocess.run(
        ["bash", str(REPO / "run_train.sh"), *args], cwd=REPO, env=_train_env(ngpu, env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )


def train_ok(folder: Path, config: str, *args: str, ngpu: int = 1, env: dict | None = None) -> str:
    """A run of `config` (plus `args`) dumping into `folder` that must succeed; returns its log."""
    result = run_train("--job.config_file", config, "--job.dump_folder", str(folder), *args, ngpu=ngpu, env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    return result.stdout


def let_lines(log: str) -> dict[int, dict[str, float]]:
    """step -> {lambda, alignment_loss, cosine} from the console's [LET] step lines."""
    number = r":\s*([\d.e+-]+)\s*"
    pattern = re.compile(rf"\[LET\] step{number}lambda{number}alignment_loss{number}cosine{number}")
    return {int(m[1]): {"lambda": float(m[2]), "alignment_loss": float(m[3]), "cosine": float(m[4])}
            for m in pattern.finditer(log)}


def distillation_lines(log: str) -> dict[int, dict[str, float]]:
    """step -> {lambda, distillation_loss, top1_agreement} from the console's [LET] step lines of signal = "logits"."""
    number = r":\s*([\d.e+-]+)\s*"
    pattern = re.compile(rf"\[LET\] step{number}lambda{number}distillation_loss{number}top1_agreement{number}")
    return {int(m[1]): {"lambda": float(m[2]), "distillation_loss": float(m[3]), "top1_agreement": float(m[4])}
            for m in pattern.finditer(log)}


def tb_scalars(folder: Path, tag: str) -> dict[int, float]:
    """step -> value of one TensorBoard scalar written under `folder` (full float precision)."""
    return read_scalars(folder, (tag,))[tag]


def assert_same_scalars(
    expected_run: Path, run: Path, tags: Iterable[str], steps: Iterable[int], tolerance: float = 1e-6
) -> None:
    """Each TensorBoard scalar of `tags` differs between two runs by at most `tolerance` at every one of `steps`
    (both runs must have logged it there)."""
    steps = list(steps)
    for tag in tags:
        expected, got = tb_scalars(expected_run, tag), tb_scalars(run, tag)
        for step in steps:
            assert step in expected and step in got, (tag, step, "not logged")
            assert abs(expected[step] - got[step]) <= tolerance, (tag, step, expected[step], got[step])


def save_tiny_teacher(folder: Path, model_type: str, gpt2_style_tokenizer: bool = False) -> Path:
    """A random teacher of one architecture in the project tokenizer's 4096-token vocabulary, with that tokenizer.

    gpt2_style_tokenizer: bos and eos are the same token, as in Pythia's and OPT's tokenizers.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    shapes = {
        "llama": dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
                      tie_word_embeddings=True),
        "gpt_neox": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, rotary_pct=0.25),
        "opt": dict(hidden_size=64, ffn_dim=128, num_attention_heads=4, word_embed_proj_dim=64),
    }
    config = AutoConfig.for_model(
        model_type, vocab_size=4096, num_hidden_layers=2, max_position_embeddings=512, **shapes[model_type]
    )
    AutoModelForCausalLM.from_config(config).eval().save_pretrained(folder)
    tokenizer = ASSETS / "tokenizer"
    copy_tokenizer_files(tokenizer, folder)
    tokenizer_config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    if gpt2_style_tokenizer:
        tokenizer_config["bos_token"] = tokenizer_config["eos_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def assert_final_state_matches(model, teacher, tokens):
    """teacher(tokens) equals transformers' hidden_states[-1], and its logits the HF logits (fp32, atol 1e-4)."""
    import torch

    with torch.no_grad():
        ref = model(tokens, output_hidden_states=True)
        hidden = teacher(tokens)
        torch.testing.assert_close(hidden, ref.hidden_states[-1], atol=1e-4, rtol=0)
        torch.testing.assert_close(teacher.logits(hidden), ref.logits, atol=1e-4, rtol=0)
    return hidden


BROKEN_TEACHERS = ("nan weight", "inf weight", "truncated safetensors", "invalid json", "shape mismatch",
                   "missing tokenizer", "missing tensor", "missing shard")


def broken_teacher(folder: Path, kind: str) -> Path:
    """A copy of the tiny pretrained teacher broken in one way (a name of BROKEN_TEACHERS)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(ASSETS / "teacher_debug", folder)
    weights = folder / "model.safetensors"
    state_dict = load_file(weights)
    if kind in ("nan weight", "inf weight"):
        name = "model.layers.1.mlp.down_proj.weight" if kind == "nan weight" else "model.norm.weight"
        state_dict[name].view(-1)[3] = float("nan" if kind == "nan weight" else "inf")
        save_file(state_dict, weights, metadata={"format": "pt"})
    elif kind == "truncated safetensors":
        with open(weights, "r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    elif kind == "invalid json":
        (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": 128,')
    elif kind == "shape mismatch":
        config = json.loads((folder / "config.json").read_text())
        rewrite_config(folder, intermediate_size=2 * config["intermediate_size"])
    elif kind == "missing tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (folder / name).unlink()
    elif kind == "missing tensor":
        del state_dict["model.layers.2.self_attn.v_proj.weight"]
        save_file(state_dict, weights, metadata={"format": "pt"})
    elif kind == "missing shard":
        shards = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
        index = {"weight_map": {name: shards[i % 2] for i, name in enumerate(state_dict)}}
        weights.rename(folder / shards[0])
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        raise ValueError(kind)
    return folder


def start_train(log: Path, *args: str, ngpu: int = 1, env: dict | None = None) -> subprocess.Popen:
    """./run_train.sh in the background, output to `log`: for tests that signal a run while it trains."""
    with open(log, "w") as out:
        return subprocess.Popen(["bash", str(REPO / "run_train.sh"), *args], cwd=REPO, env=_train_env(ngpu, env),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, read off /proc: torchrun's workers run in sessions of their own, so neither
    the launcher's process group nor its session reaches them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def signal_tree(pid: int, sig: int) -> list[int]:
    """Send `sig` to every process of a run (as Slurm signals every process of a job step); SIGKILL also takes
    each one's process group. Returns the pids signalled."""
    pids = process_tree(pid)
    for target in pids:
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL and os.getpgid(target) != os.getpgid(0):
                os.killpg(os.getpgid(target), sig)
            os.kill(target, sig)
    return pids


def wait_for(predicate, process: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until predicate() holds; fails if the run ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended (rc {process.returncode}) before the awaited point"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.2)


def save_wordlevel_tokenizer(folder: Path) -> Path:
    """A tokenizer.json that is not byte-level (WordLevel on whitespace): its tokens do not say which bytes they
    cover, so cross-tokenizer alignment must refuse it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<unk>", "<s>", "</s>", "the", "a", "of"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    return folder


SENTENCEPIECE_STYLES = ("gemma", "llama2", "mistral")
"""How a SentencePiece-style BPE writes spaces: gemma: a Replace(' ' -> '▁') normalizer, no prefix space;
llama2: Prepend('▁') + Replace (a prefix space before every text); mistral: a Metaspace pre-tokenizer that prepends
'▁' unless the text starts with a space."""


def save_sentencepiece_tokenizer(folder: Path, style: str = "gemma", vocab_size: int = 400) -> Path:
    """A SentencePiece-style BPE tokenizer.json in miniature, as Gemma 3, Llama 2 and Mistral ship theirs: pieces
    with '▁' for a space, the 256 byte-fallback pieces <0x00>..<0xFF> after the special tokens (so characters
    outside the vocabulary, e.g. CJK or emoji, become one piece per byte), a post-processor that puts BOS first, and
    tokenizer_config.json with bos/eos. Trained on the first 200 documents of the sample corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    bos, eos = ("<bos>", "<eos>") if style == "gemma" else ("<s>", "</s>")
    specials = ["<pad>", eos, bos, "<unk>"]
    metaspace = "\u2581"
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    replace = normalizers.Replace(" ", metaspace)
    if style == "gemma":
        tokenizer.normalizer = replace
    elif style == "llama2":
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(metaspace), replace])
    elif style == "mistral":
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=metaspace, prepend_scheme="first", split=False)
    else:
        raise ValueError(f"style={style!r}: one of {SENTENCEPIECE_STYLES}")
    lines = (ASSETS / "sample_corpus" / "train.jsonl").read_text().splitlines()[:200]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=specials, limit_alphabet=80,
                                  show_progress=False)
    tokenizer.train_from_iterator((json.loads(line)["text"] for line in lines), trainer)
    spec = json.loads(tokenizer.to_str())
    # byte pieces right after the special tokens, as in SentencePiece vocabularies; merges name pieces, not ids
    trained = sorted(spec["model"]["vocab"].items(), key=lambda item: item[1])
    pieces = [token for token, _ in trained[:len(specials)]] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [token for token, _ in trained[len(specials):] if token not in pieces]
    spec["model"]["vocab"] = {token: i for i, token in enumerate(pieces)}
    spaces = (decoders.Metaspace(replacement=metaspace, prepend_scheme="first", split=False) if style == "mistral"
              else decoders.Replace(metaspace, " "))
    strip = [decoders.Strip(" ", 1, 0)] if style == "llama2" else []
    spec["decoder"] = json.loads(decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(), spaces, *strip])
                                 .__getstate__())
    spec["post_processor"] = json.loads(processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, specials.index(bos))]).__getstate__())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": bos, "eos_token": eos,
                                                              "unk_token": "<unk>", "pad_token": "<pad>"}))
    return folder
