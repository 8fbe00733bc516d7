"""Any causal LM that transformers can build, as a frozen teacher: the backend for a `model_type` with no native module.

The native modules (llama, qwen, gpt_neox, opt) are torchtitan-style re-implementations: fast, compilable, with the
student's attention kernels. Every other family (Gemma 3, Phi, Mistral, ...) costs nothing to add this way: the
folder is read by transformers' own `from_pretrained` (tied weights, prefixes, RoPE variants, sliding windows), and
the module meets the same teacher protocol - frozen, no grad, eval, `teacher_layer` with the native meaning:

- -1: the final state after the final norm, the base model's `last_hidden_state`;
- i >= 0: the OUTPUT of block i, read by a forward hook (transformers' `hidden_states[-1]` is after the final norm,
  so the list of hidden states would give the wrong thing for the last block); the blocks after i are dropped.

transformers is an optional extra (`pip install "let-titan[hf]"`), imported only here and only when this backend
is chosen, so a run with a native teacher never imports it.
"""

import functools
import json
import os
from typing import Any

import torch
from torch import nn

from ..config import LETConfigError
from .checkpoint import check_finite
from .registry import TeacherArchitecture, TeacherOptions, resolve_layer
from .text import config_object, text_config


def transformers_model_types() -> set[str] | None:
    """The model_types transformers can build as a causal LM (its own and those registered with
    AutoModelForCausalLM.register), or None when transformers is not installed."""
    try:
        from transformers import AutoModelForCausalLM
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:
        return None
    registered = {config.model_type for config in AutoModelForCausalLM._model_mapping._extra_content}
    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) | registered


def _build_lm(config: dict[str, Any]) -> nn.Module:
    """The *ForCausalLM module of config.json, on the current device context (meta for the pre-start checks), with
    transformers' default attention (sdpa where the family has it)."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_config(config_object(config))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LETConfigError(
            f"let.teacher_backend='transformers': transformers cannot build model_type {config.get('model_type')!r} "
            f"from this config.json ({reason})"
        ) from None


def _blocks(lm: nn.Module, n_layers: int) -> nn.ModuleList:
    """The decoder's list of blocks, whatever the family calls it (layers, h, decoder.layers, ...)."""
    lists = [m for m in lm.base_model.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
    if len(lists) != 1:
        raise LETConfigError(
            f"let.teacher_backend='transformers': cannot tell this model's {n_layers} blocks apart (found "
            f"{len(lists)} lists of that length); use teacher_layer = -1 or a native model_type"
        )
    return lists[0]


class TransformersTeacher(nn.Module):
    """A transformers *ForCausalLM cut after the requested block; `logits` uses its own LM head."""

    backend = "transformers"

    def __init__(self, lm: nn.Module, options: TeacherOptions):
        super().__init__()
        if options.attn_type != "sdpa":
            raise LETConfigError(
                f"model.flavor: the student's attn_type={options.attn_type!r} (document masking) has no equivalent in "
                "the transformers teacher backend, which attends causally over the whole window; use an sdpa flavor "
                "or a native model_type (let.teacher_backend = 'native')"
            )
        config = lm.config.get_text_config()
        self.lm = lm
        self.hidden_size, self.vocab_size = config.hidden_size, config.vocab_size
        self.n_layers = config.num_hidden_layers
        self.max_seq_len = learned_positions(lm)
        self.layer = resolve_layer(options.layer, self.n_layers) if options.layer >= 0 else -1
        self._block_output: torch.Tensor | None = None
        self._state_source: tuple[nn.Module, bool] | None = None
        """The module whose output the LM head reads, and whether that output is a ModelOutput (check_logits)."""
        if self.layer >= 0:  # only then are the blocks looked for: -1 is the base model's own last state
            blocks = _blocks(lm, self.n_layers)
            del blocks[self.layer + 1:]
            blocks[self.layer].register_forward_hook(self._keep_block_output)

    def _keep_block_output(self, module: nn.Module, args: Any, output: Any) -> None:
        self._block_output = output[0] if isinstance(output, tuple) else output

    def forward(self, tokens: torch.Tensor, attention_masks: Any = None) -> torch.Tensor:
        assert attention_masks is None, "the transformers backend attends causally (sdpa students only)"
        final = self.lm.base_model(input_ids=tokens, use_cache=False).last_hidden_state
        if self.layer == -1:
            return final
        output, self._block_output = self._block_output, None
        return output

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's own causal-LM forward from the final state on: its LM head and whatever its family does to
        the logits after it (Gemma's soft-capping, Granite's logits_scaling, Cohere's logit_scale, ...), with the
        module that produces the state the head reads (`check_logits` found it) stood in for by `hidden`, so a family
        never needs a rule here. Called on a few sequences at a time (TeacherLM's chunks)."""
        if self._state_source is None:
            raise RuntimeError("TransformersTeacher.logits before check_logits found the state the head reads")
        source, as_output = self._state_source
        source.forward = lambda *args, **kwargs: _StateOnly(last_hidden_state=hidden) if as_output else hidden
        try:
            ids = torch.zeros(hidden.shape[:-1], dtype=torch.long, device=hidden.device)  # read by nothing
            return self.lm(input_ids=ids, use_cache=False).logits
        finally:
            del source.forward

    def check_logits(self, path: str | os.PathLike, model_type: str) -> None:
        """Once, when the teacher is built: which module's output the LM head reads (the base model for most
        families, OPT's decoder, ...: the outermost module the forward calls whose output is the head's input), and
        that `logits` then gives the model's own logits on a probe input. A causal LM whose head reads more than
        that state (its input ids, an earlier layer) is refused rather than teaching with other logits than its own."""
        probe = (torch.arange(PROBE_TOKENS, device=self.lm.device) * 7919 % self.vocab_size)[None]
        with torch.no_grad():
            expected = self._find_state_source(probe).float()
            got = self.logits(self(probe)).float() if self._state_source is not None else None
        scale = expected.abs().max().item()
        error = (got - expected).abs().max().item() if got is not None else float("inf")
        if error > LOGITS_TOLERANCE.get(self.lm.dtype, LOGITS_TOLERANCE[torch.float32]) * scale:
            raise LETConfigError(
                f"let.teacher_path='{path}': model_type {model_type!r}: the logits from its final state differ from "
                f"its own forward's by up to {error:.3g} (largest logit {scale:.3g}): its causal-LM head reads more "
                "than the last hidden state, which the teacher term cannot follow; use another teacher"
            )

    def _find_state_source(self, probe: torch.Tensor) -> torch.Tensor:
        """Run the model's own forward on `probe` with hooks that see what each module of the base model returns
        and what the LM head reads; keep the outermost module whose output is that input. Returns the logits."""
        outputs: dict[nn.Module, tuple[torch.Tensor, bool]] = {}
        head_input: list[torch.Tensor] = []

        def keep(module: nn.Module, args: Any, output: Any) -> None:
            state = output if isinstance(output, torch.Tensor) else output[0] if len(output) else None
            if isinstance(state, torch.Tensor):
                outputs.setdefault(module, (state, not isinstance(output, torch.Tensor)))

        candidates = list(self.lm.base_model.modules())  # pre-order: outermost first
        handles = [module.register_forward_hook(keep) for module in candidates]
        handles.append(self.lm.get_output_embeddings().register_forward_pre_hook(
            lambda module, args: head_input.append(args[0])))
        try:
            logits = self.lm(input_ids=probe, use_cache=False).logits
        finally:
            for handle in handles:
                handle.remove()
        self._state_source = next(((module, as_output) for module in candidates if module in outputs
                                   for state, as_output in [outputs[module]]
                                   if head_input and state.shape == head_input[0].shape
                                   and torch.equal(state, head_input[0])), None)
        return logits

    def init_buffers(self) -> None:
        pass  # from_pretrained builds the module on its device: its RoPE tables and scales are already right


class _StateOnly(dict):
    """What the causal LM's forward reads of its base model's output: the last state, everything else None."""

    def __getattr__(self, name: str) -> Any:
        return self.get(name)

    def __getitem__(self, key: Any) -> Any:
        return self["last_hidden_state"] if key == 0 else dict.__getitem__(self, key)


PROBE_TOKENS = 8
"""Length of the probe input `check_logits` compares the two ways of computing logits on."""
LOGITS_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 2e-3}
"""Largest |difference| over the largest |logit| the two ways may differ by: the same operations, on different
paths through the model."""


def learned_positions(lm: nn.Module) -> int | None:
    """The longest sequence a model with a learned position table can read (GPT-2's n_positions, OPT's and XLM's
    max_position_embeddings): an embedding table of the base model, other than the token embedding, with as many
    rows as the config's position count (OPT keeps 2 more); None for RoPE, ALiBi and other unbounded families."""
    config = lm.config.get_text_config()
    limit = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    tokens = lm.get_input_embeddings()
    for module in lm.base_model.modules():
        if isinstance(module, nn.Embedding) and module is not tokens and limit is not None:
            if module.num_embeddings in (limit, limit + 2):
                return limit
    return None


def build_transformers_teacher(config: dict[str, Any], options: TeacherOptions) -> TransformersTeacher:
    return TransformersTeacher(_build_lm(config), options)


def load_transformers_teacher(path: str | os.PathLike, config: dict[str, Any], options: TeacherOptions,
                              device: torch.device | str, dtype: torch.dtype) -> TransformersTeacher:
    """transformers reads the folder itself (tied weights, shards, buffers), then the teacher is cut to its layer."""
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(path, config=config_object(config), dtype=dtype, local_files_only=True)
    teacher = TransformersTeacher(lm.to(device).eval(), options)
    for name, parameter in teacher.lm.named_parameters():  # what load_hf_state_dict checks on the native path
        check_finite(path, "the folder's", name, parameter)
    if teacher.layer == -1:  # with blocks cut off (teacher_layer >= 0) there is no own forward, and no logits used
        teacher.check_logits(path, config["model_type"])
    return teacher


@functools.lru_cache(maxsize=8)
def _meta_lm(config_json: str) -> nn.Module:
    with torch.device("meta"):
        return _build_lm(json.loads(config_json))


def convert_transformers_state_dict(config: dict[str, Any],
                                    hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint names -> this module's (`lm.` + the *ForCausalLM's name) for the pre-start weight check, renamed as
    transformers' own loader renames them (old names such as GPT-NeoX's `embed_out`, base-model prefixes); a tied LM
    head is the embedding it shares. A tensor that transformers fuses with others on loading (a converter) stands in
    at the fused shape: its sources are checked by name only, and transformers checks their shapes at load."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    lm = _meta_lm(json.dumps(config, sort_keys=True))
    meta = lm.state_dict()
    mapping = get_model_conversion_mapping(lm)
    renamings = [entry for entry in mapping if isinstance(entry, WeightRenaming)]
    converters = [entry for entry in mapping if isinstance(entry, WeightConverter)]
    tied = getattr(lm, "_tied_weights_keys", None)
    tied = tied if isinstance(tied, dict) and lm.config.get_text_config().tie_word_embeddings else {}
    converted = {}
    for key, value in hf_state_dict.items():
        name, fused = rename_source_key(key, renamings, converters, lm.base_model_prefix, meta)
        if name not in meta and key in meta:  # as transformers' loader: the key was right, only a prefix is wanted
            name, fused = rename_source_key(key, [], [], lm.base_model_prefix, meta)
        if fused is not None and name in meta:
            value = torch.empty(meta[name].shape, device="meta")
        converted["lm." + name] = value
        converted.update({"lm." + target: value for target, source in tied.items() if source == name})
    return converted


def output_width(config: dict[str, Any], layer: int) -> int:
    # OPT-350m style models project the final state down to word_embed_proj_dim
    if layer == -1 and config.get("word_embed_proj_dim"):
        return config["word_embed_proj_dim"]
    return text_config(config)["hidden_size"]


def max_positions(config: dict[str, Any]) -> int | None:
    return learned_positions(_meta_lm(json.dumps(config, sort_keys=True)))


TRANSFORMERS_ARCHITECTURE = TeacherArchitecture(
    build=build_transformers_teacher,
    convert_state_dict=convert_transformers_state_dict,
    output_width=output_width,
    max_positions=max_positions,
    load=load_transformers_teacher,
)
