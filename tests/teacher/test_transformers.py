"""The transformers teacher backend (let_components/teacher/transformers_backend.py): any causal LM transformers can
build teaches through the same protocol as the native modules. Every native family is its reference: the same
folder through the project's loader with each backend gives the same states for teacher_layer -1, 0 and n-1."""

import json
import re
import subprocess
import sys

import pytest
import torch

from let_components.config import LETConfigError
from let_components.teacher import TeacherOptions, load_teacher, teacher_backend
from let_components.teacher.transformers_backend import TransformersTeacher
from tests.support import REPO
from tests.support.teachers import broken_teacher, save_llama, save_qwen, save_tiny_teacher

FAMILIES = {
    "llama untied": lambda folder: save_llama(folder),
    "llama tied": lambda folder: save_llama(folder, tie_word_embeddings=True),
    "qwen2": lambda folder: save_qwen(folder, "qwen2"),
    "qwen3 tied": lambda folder: save_qwen(folder, "qwen3", tie_word_embeddings=True),
    "gpt_neox": lambda folder: save_tiny_teacher(folder, "gpt_neox"),
    "opt": lambda folder: save_tiny_teacher(folder, "opt"),
}
RELATIVE = 1e-5
"""Largest |native - transformers| over the largest |native| state: the two compute the same math in fp32, in
different op orders (measured: 0 for qwen/gpt_neox/opt, 2e-7 for llama)."""


@pytest.mark.parametrize("family", FAMILIES)
def test_both_backends_give_the_same_states_for_every_native_family(tmp_path, family):
    folder = FAMILIES[family](tmp_path / "teacher")
    n_layers = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
    tokens = torch.randint(0, 290, (2, 24), generator=torch.Generator().manual_seed(0))
    for layer in (-1, 0, n_layers - 1):
        native, through_hf = (load_teacher(folder, options=TeacherOptions(layer=layer, max_seq_len=32, backend=b))
                              for b in ("native", "transformers"))
        assert isinstance(through_hf, TransformersTeacher) and not isinstance(native, TransformersTeacher)
        assert not any(p.requires_grad for p in through_hf.parameters()) and not through_hf.training
        with torch.no_grad():
            expected, got = native(tokens), through_hf(tokens)
            assert got.shape == expected.shape
            assert (got - expected).abs().max() <= RELATIVE * expected.abs().max(), (family, layer)
            if layer == -1:
                torch.testing.assert_close(through_hf.logits(got), native.logits(expected), atol=1e-4, rtol=0)


def test_the_last_block_is_its_output_not_the_final_norm(tmp_path):
    """transformers' hidden_states[-1] is after the final norm; teacher_layer = n - 1 is the block's own output."""
    from transformers import AutoModelForCausalLM

    folder = save_llama(tmp_path / "teacher")
    tokens = torch.randint(0, 290, (1, 16))
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        states = reference(tokens, output_hidden_states=True).hidden_states
        last_block = load_teacher(folder, options=TeacherOptions(layer=2, backend="transformers"))(tokens)
        final = load_teacher(folder, options=TeacherOptions(layer=-1, backend="transformers"))(tokens)
    torch.testing.assert_close(final, states[-1])
    assert not torch.allclose(last_block, states[-1])
    # the output of block 2 is what the final norm normalises
    torch.testing.assert_close(reference.model.norm(last_block), states[-1])


def test_a_family_without_a_native_module_teaches_as_transformers_computes_it(tmp_path):
    """A tiny random Gemma 3 (model_type gemma3_text: 5 sliding-window blocks then a global one, q/k norms, scaled
    embeddings, tied head; logit soft-capping switched on) needs no module of ours: its teacher is transformers'
    own forward, final state and logits."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        "gemma3_text", vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=8, final_logit_softcapping=30.0,
    )
    assert config.layer_types[-1] == "full_attention" and config.layer_types[0] == "sliding_attention"
    torch.manual_seed(0)
    reference = AutoModelForCausalLM.from_config(config).eval()
    reference.save_pretrained(tmp_path / "gemma")
    teacher = load_teacher(tmp_path / "gemma", options=TeacherOptions(max_seq_len=32))
    assert isinstance(teacher, TransformersTeacher)
    tokens = torch.randint(0, 300, (2, 24))  # longer than the sliding window
    with torch.no_grad():
        expected = reference(tokens, output_hidden_states=True)
        hidden = teacher(tokens)
        torch.testing.assert_close(hidden, expected.hidden_states[-1], atol=1e-5, rtol=0)
        torch.testing.assert_close(teacher.logits(hidden), expected.logits, atol=1e-4, rtol=0)


def test_auto_takes_the_native_module_where_there_is_one_and_transformers_elsewhere():
    assert teacher_backend({"model_type": "llama"}) == "native"
    assert teacher_backend({"model_type": "llama"}, backend="transformers") == "transformers"
    assert teacher_backend({"model_type": "gemma3_text"}) == "transformers"
    with pytest.raises(LETConfigError, match="let.teacher_backend='native': model_type 'gemma3_text'") as error:
        teacher_backend({"model_type": "gemma3_text"}, "/t", backend="native")
    assert "\n" not in str(error.value)


def test_a_model_type_neither_backend_knows_is_one_line_naming_both():
    with pytest.raises(LETConfigError) as error:
        teacher_backend({"model_type": "no_such_lm"}, "/t")
    message = str(error.value)
    assert message.startswith("let.teacher_path='/t': model_type 'no_such_lm' is not a supported teacher")
    assert "native module (native: ['gpt_neox', 'llama', 'opt', 'qwen2', 'qwen3'])" in message
    assert "transformers" in message and "\n" not in message


@pytest.mark.parametrize("kind, expected", [
    ("missing tensor", "lack 1 tensor(s) config.json requires, first 'lm.model.layers.2.self_attn.v_proj.weight'"),
    ("shape mismatch", "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [512, 128] but config.json implies"),
    ("nan weight", "tensor 'model.layers.1.mlp.down_proj.weight' holds 1 non-finite value(s) (nan)"),
])
def test_a_broken_folder_is_the_same_one_line_error_through_transformers(tmp_path, kind, expected):
    """transformers would initialise a missing tensor at random with a warning: the project's own checks run first."""
    folder = broken_teacher(tmp_path / "teacher", kind)
    pattern = f"^{re.escape(f'let.teacher_path={str(folder)!r}: ')}.*{re.escape(expected)}"
    with pytest.raises(LETConfigError, match=pattern):
        load_teacher(folder, options=TeacherOptions(backend="transformers"))


def test_a_student_with_document_masking_is_refused_in_one_line(tmp_path):
    with pytest.raises(LETConfigError, match="attn_type='varlen' .* no equivalent in the transformers teacher"):
        load_teacher(save_llama(tmp_path / "t"), options=TeacherOptions(attn_type="varlen", backend="transformers"))


def test_a_native_run_never_imports_transformers():
    code = (
        "import sys; import recipes.train, let_components.trainer; "
        "from let_components.teacher import load_teacher, TeacherOptions, teacher_backend; "
        "load_teacher('assets/teacher_debug', options=TeacherOptions(max_seq_len=16))"
        "(__import__('torch').zeros(1, 4, dtype=__import__('torch').long)); "
        "teacher_backend({'model_type': 'llama'}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"



def _saved(folder, model_type: str, **config):
    """A tiny random causal LM of `model_type`, saved by transformers."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **config)).eval().save_pretrained(folder)
    return folder


TINY = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)


@pytest.mark.parametrize("model_type, config", [
    ("granite", {**TINY, "logits_scaling": 8.0}),  # the forward divides its logits by logits_scaling
    ("cohere", {**TINY, "logit_scale": 0.125}),  # ... multiplies them by logit_scale
    ("llama", TINY),  # ... leaves them as the head gives them
])
def test_the_teachers_logits_are_its_own_forwards_whatever_the_family_does_to_them(tmp_path, model_type, config):
    """Review finding: the backend applied the LM head and Gemma's soft-capping only, so a Granite teacher's logits
    were off by its logits_scaling (a silent, wrong teacher for the sanity check, SALT/RKD and the caught-up rule)."""
    from transformers import AutoModelForCausalLM

    folder = _saved(tmp_path / model_type, model_type, **config)
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    teacher = load_teacher(folder, options=TeacherOptions(max_seq_len=32, backend="transformers"))
    tokens = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(teacher.logits(teacher(tokens)), reference(tokens).logits, atol=1e-5, rtol=0)


def _register_custom(model_type: str, logits_of):
    """A causal LM family of the test's own, registered with transformers: llama, but its forward's logits are
    `logits_of(model, state, input_ids)` - no config key says so."""
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    from transformers.modeling_outputs import CausalLMOutputWithPast

    config_class = type(f"{model_type}Config", (LlamaConfig,), {"model_type": model_type})

    def forward(self, input_ids=None, **kwargs):
        state = self.model(input_ids=input_ids, use_cache=False).last_hidden_state
        return CausalLMOutputWithPast(logits=logits_of(self, state, input_ids))

    model_class = type(f"{model_type}ForCausalLM", (LlamaForCausalLM,),
                       {"config_class": config_class, "forward": forward})
    AutoConfig.register(model_type, config_class, exist_ok=True)
    AutoModelForCausalLM.register(config_class, model_class, exist_ok=True)
    return config_class, model_class


def test_a_family_that_scales_its_logits_with_no_config_key_still_teaches_its_own(tmp_path):
    """No rule per family: a model whose forward multiplies its logits by 3, with nothing in config.json saying so,
    gets its own logits (a per-family patch would give a third of them)."""
    config_class, model_class = _register_custom("let_test_scaled", lambda m, state, ids: 3.0 * m.lm_head(state))
    torch.manual_seed(0)
    reference = model_class(config_class(**TINY)).eval()
    reference.save_pretrained(tmp_path / "scaled")
    teacher = load_teacher(tmp_path / "scaled", options=TeacherOptions(max_seq_len=32))
    tokens = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(teacher.logits(teacher(tokens)), reference(tokens).logits, atol=1e-5, rtol=0)


def test_a_head_that_reads_more_than_the_last_state_is_refused_in_one_line_naming_the_model_type(tmp_path):
    """The build-time check: logits the teacher cannot reproduce from its final state (here the head also reads the
    input ids) are refused when the teacher is built, instead of teaching with other logits than the model's."""
    config_class, model_class = _register_custom(
        "let_test_reads_ids", lambda m, state, ids: m.lm_head(state + m.model.embed_tokens(ids)))
    torch.manual_seed(0)
    model_class(config_class(**TINY)).eval().save_pretrained(tmp_path / "odd")
    with pytest.raises(LETConfigError, match="model_type 'let_test_reads_ids': the logits from its final state "
                                             "differ from its own forward's by up to") as error:
        load_teacher(tmp_path / "odd", options=TeacherOptions(max_seq_len=32))
    assert "\n" not in str(error.value)


def test_the_final_state_needs_no_list_of_blocks(tmp_path):
    """Review finding: blocks were looked for even at teacher_layer = -1, failing for XLM (four lists of
    num_hidden_layers modules) with a message recommending teacher_layer = -1, which was what had been asked."""
    folder = _saved(tmp_path / "xlm", "xlm", vocab_size=300, emb_dim=64, n_layers=2, n_heads=4, causal=True)
    teacher = load_teacher(folder, options=TeacherOptions(max_seq_len=32, backend="transformers"))
    with torch.no_grad():
        assert teacher(torch.randint(0, 300, (1, 8))).shape == (1, 8, 64)
    with pytest.raises(LETConfigError, match="cannot tell this model's 2 blocks apart"):
        load_teacher(folder, options=TeacherOptions(layer=0, max_seq_len=32, backend="transformers"))
