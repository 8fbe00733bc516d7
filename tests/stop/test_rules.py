"""When the teacher leaves (let_components/stop/): the fixed step, and the caught-up rule that decides at run time
from both models' loss per byte of text."""

import math
import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh

from let_components.config import LET
from let_components.record import RunRecord, read_record, recorded_decision, write_record
from let_components.stop import CaughtUp, FixedStop
from let_components.stop.caught_up import recorded_step
from let_components.tokens.per_byte import bits_per_byte, lm_loss_sums, text_byte_lengths
from let_components.tokens.tokenizers import load_tokenizer
from tests.support import ASSETS
from tests.support.logs import assert_same_scalars
from tests.support.runs import SHORT_RUN, TINY_BATCH, train_ok
from tests.support.teachers import save_tiny_teacher
from tests.support.tokenizers import save_qwen_tokenizer

LN2 = math.log(2)


def _rule(tmp_path, **let) -> CaughtUp:
    defaults = dict(stop_when="caught_up", stop_step=100, caught_up_every=10, caught_up_window=3)
    return CaughtUp(LET(**{**defaults, **let}), RunRecord(tmp_path))


def _check(rule: CaughtUp, step: int, student_bpb: float, teacher_bpb: float, n_bytes: float = 1000.0):
    """One check whose pooled sums give these bits per byte (nats = bpb x ln 2 x bytes)."""
    return rule.check(step, [student_bpb * LN2 * n_bytes, n_bytes, teacher_bpb * LN2 * n_bytes, n_bytes])


def test_fixed_stop_is_the_schedule_and_needs_the_teacher_until_stop_step():
    rule = FixedStop(LET(stop_step=4, lambda_0=0.1))
    assert [rule.weight(s) for s in range(1, 7)] == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.0, 0.0])
    assert rule.needed_after(3) and not rule.needed_after(4)


def test_the_teacher_leaves_once_the_pooled_student_is_at_or_below_the_teacher(tmp_path):
    rule = _rule(tmp_path)
    for step, student in ((10, 3.0), (20, 2.5), (30, 2.0)):  # pooled: (3 + 2.5 + 2) / 3 = 2.5 > 2.4
        _check(rule, step, student, 2.4)
    assert rule.decided_step is None and rule.weight(31) > 0
    metrics = _check(rule, 40, 2.5, 2.4)  # window (2.5, 2, 2.5): pooled 2.333 <= 2.4
    assert metrics == pytest.approx({"student_bits_per_byte": 7 / 3, "teacher_bits_per_byte": 2.4})
    assert rule.decided_step == 40
    assert rule.weight(40) == pytest.approx(0.1 * (100 - 39) / 100)  # the deciding step still teaches
    assert rule.weight(41) == 0.0 and not rule.needed_after(40) and rule.needed_after(39)
    assert recorded_decision(tmp_path) == {"step": 40, "student_bits_per_byte": pytest.approx(7 / 3),
                                           "teacher_bits_per_byte": pytest.approx(2.4)}


def test_pooling_weighs_every_byte_alike(tmp_path):
    rule = _rule(tmp_path, caught_up_window=2)
    _check(rule, 10, 4.0, 3.0, n_bytes=100.0)
    _check(rule, 20, 2.0, 3.0, n_bytes=300.0)  # (4 x 100 + 2 x 300) / 400 = 2.5 bits per byte
    assert rule.smoothed() == pytest.approx((2.5, 3.0)) and rule.decided_step == 20


@pytest.mark.parametrize("margin, decides", [(0.0, False), (0.15, True), (-0.05, False)])
def test_the_margin_is_in_bits_per_byte_and_positive_lets_the_teacher_leave_earlier(tmp_path, margin, decides):
    rule = _rule(tmp_path, caught_up_window=1, caught_up_margin=margin)
    _check(rule, 10, 2.1, 2.0)  # the student 0.1 bits per byte behind
    assert (rule.decided_step == 10) is decides


def test_no_decision_before_the_window_is_full_or_the_minimum_step(tmp_path):
    rule = _rule(tmp_path, caught_up_min_steps=35)
    _check(rule, 10, 1.0, 9.0)  # a random teacher: beaten at once, but one check is no window
    _check(rule, 20, 1.0, 9.0)
    _check(rule, 30, 1.0, 9.0)  # window full, but before caught_up_min_steps
    assert rule.decided_step is None
    _check(rule, 40, 1.0, 9.0)
    assert rule.decided_step == 40


def test_stop_step_stays_the_hard_cap(tmp_path):
    rule = _rule(tmp_path, stop_step=25)
    for step in (10, 20):
        _check(rule, step, 5.0, 1.0)  # a teacher never caught
    assert rule.decided_step is None and rule.weight(25) > 0 and rule.weight(26) == 0.0
    assert not rule.needed_after(25)


def test_state_round_trip_reproduces_the_decision(tmp_path):
    rule, restored = _rule(tmp_path), _rule(tmp_path)
    for step, student in ((10, 3.0), (20, 2.5)):
        _check(rule, step, student, 2.4)
    restored.load_state_dict(rule.state_dict())
    for r in (rule, restored):
        _check(r, 30, 2.0, 2.4)
        _check(r, 40, 2.5, 2.4)
    assert rule.decided_step == restored.decided_step == 40
    decided = _rule(tmp_path)
    decided.load_state_dict(rule.state_dict())
    assert decided.weight(41) == 0.0


def _job(tmp_path, **let) -> SimpleNamespace:
    """What the rule reads of a JobConfig when it starts or resumes (its byte tables aside)."""
    defaults = dict(stop_when="caught_up", stop_step=500, caught_up_every=10, caught_up_window=1)
    return SimpleNamespace(let=LET(**{**defaults, **let}), job=SimpleNamespace(dump_folder=str(tmp_path)))


def _resumed(job, resume_step: int) -> CaughtUp:
    """The rule a (re)start builds (CaughtUpOption.build), without the byte tables a check would measure with."""
    record = RunRecord(job.job.dump_folder)
    return CaughtUp(job.let, record, decided_step=recorded_step(record, resume_step))


def test_a_checkpoint_from_before_a_recorded_decision_withdraws_it(tmp_path):
    """Decided at 150, resumed from checkpoint 100, the replay does not decide by 150 (GPU nondeterminism, another
    margin) and is preempted at 170: resumed from 170, the pre-start answer must be what the run does once its
    checkpoint has loaded - the teacher still teaches - and let_run.json must not keep the decision."""
    job = _job(tmp_path)
    write_record(tmp_path, {"lambda_0": 0.1}, resuming=False)  # what the run wrote at its start
    first = _resumed(job, 0)
    for step in range(10, 101, 10):
        _check(first, step, 3.0, 2.0)
    checkpoint_100 = first.state_dict()
    _check(first, 150, 1.0, 2.0)
    assert recorded_decision(tmp_path)["step"] == 150

    replay = _resumed(job, 100)
    assert replay.needed_after(100)  # the pre-start answer
    replay.load_state_dict(checkpoint_100)
    assert recorded_decision(tmp_path) is None and read_record(tmp_path)["lambda_0"] == 0.1
    for step in range(110, 171, 10):
        _check(replay, step, 3.0, 2.0)  # not caught up this time
    checkpoint_170 = replay.state_dict()

    resumed = _resumed(job, 170)
    assert resumed.needed_after(170)  # before the fix: False, from the stale record, so no check ran
    resumed.load_state_dict(checkpoint_170)
    assert resumed.needed_after(170) and resumed.weight(171) == pytest.approx(0.1 * (500 - 170) / 500)


def test_a_checkpoint_holding_a_decision_the_record_lacks_restores_it(tmp_path):
    decided = _rule(tmp_path / "other", caught_up_window=1)
    _check(decided, 40, 1.0, 2.0)
    rule = _rule(tmp_path, caught_up_window=1)
    rule.load_state_dict(decided.state_dict())
    assert recorded_decision(tmp_path) == {"step": 40, "student_bits_per_byte": pytest.approx(1.0),
                                           "teacher_bits_per_byte": pytest.approx(2.0)}
    assert not _resumed(_job(tmp_path, stop_step=100), 40).needed_after(40)


def test_trainer_checks_the_teacher_when_the_checkpoint_still_needs_it(tmp_path, monkeypatch):
    """The backstop: pre-start thought the teacher had left (a record from another attempt), the loaded checkpoint
    says it teaches on: the teacher checks run before the first step."""
    from torchtitan.train import Trainer

    from let_components import trainer as trainer_module
    from let_components.trainer import LETTrainer

    calls = []
    monkeypatch.setattr(Trainer, "load_state_dict", lambda self, state: setattr(self, "step", state["step"]))
    monkeypatch.setattr(trainer_module, "check_teacher_side",
                        lambda job_config, startup, needed: calls.append(needed))
    job = _job(tmp_path, stop_step=100, enable=True)
    trainer = object.__new__(LETTrainer)
    trainer.job_config, trainer.startup = job, SimpleNamespace(teacher_checked=False)  # pre-start: it had left
    trainer.stop_rule = CaughtUp(job.let, RunRecord(tmp_path), decided_step=20)
    undecided = _rule(tmp_path).state_dict()
    trainer.load_state_dict({"step": 30, "let_stop_rule": undecided})
    assert calls == [True]
    calls.clear()
    trainer.load_state_dict({"step": 30, "let_stop_rule": {"decided_step": 20, "checks": []}})
    assert calls == []  # the checkpoint agrees that the teacher has left: nothing to check


def _rank(rank: int, store: str, decided) -> None:
    dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
    parallel_dims = SimpleNamespace(dp_enabled=True, get_mesh=lambda name: init_device_mesh("cpu", (2,)))
    rule = CaughtUp(LET(stop_when="caught_up", stop_step=100, caught_up_every=1, caught_up_window=1),
                    RunRecord(store + ".run"))
    for step in range(1, 6):
        # rank 0's student is far ahead from step 2, rank 1's behind until step 4: only the global sums count
        student = (1.0 if step >= 2 else 3.0) if rank == 0 else (3.5 if step < 4 else 2.0)
        rule._sums = torch.tensor([student * LN2 * 100, 100.0, 2.0 * LN2 * 100, 100.0])
        rule.end_step(step, parallel_dims)
        if rule.decided_step is not None:
            break
    decided[rank] = rule.decided_step
    dist.destroy_process_group()


def test_ranks_decide_the_same_step_from_the_summed_losses(tmp_path):
    decided = mp.Manager().dict()
    mp.spawn(_rank, args=(str(tmp_path / "store"), decided), nprocs=2, join=True)
    # step 2: (1 + 3.5) / 2 = 2.25 > 2; step 3: the same; step 4: (1 + 2) / 2 = 1.5 <= 2
    assert dict(decided) == {0: 4, 1: 4}


def test_bits_per_byte_compares_two_tokenizers_on_the_same_text(tmp_path):
    """A uniform model over V ids costs ln V nats per predicted token; per byte, two tokenizers of the same text
    differ only by how many tokens they need for it. Special tokens (BOS/EOS) are in neither sum."""
    text = "The teacher reads the same text in its own tokenizer: caf\u00e9 \u6f22\u5b57 42."
    tokenizers = {"student": load_tokenizer(ASSETS / "tokenizer"),
                  "teacher": load_tokenizer(save_qwen_tokenizer(tmp_path / "qwen", vocab_size=512))}
    results = {}
    for name, tokenizer in tokenizers.items():
        ids = torch.tensor(tokenizer.encode(text, add_bos=True, add_eos=True))
        table = torch.from_numpy(text_byte_lengths(tokenizer, name))
        vocab = len(table)
        nats, n_bytes, tokens = lm_loss_sums(torch.zeros(1, len(ids) - 1, vocab), ids[None, 1:], table).tolist()
        text_ids = tokenizer.encode(text, add_bos=False, add_eos=False)
        # predicted: every text token but the first when no BOS precedes it (Qwen-style); EOS stands for no text
        unpredicted = 0 if tokenizer.bos_id is not None else int(table[text_ids[0]])
        assert n_bytes == len(text.encode("utf-8")) - unpredicted
        text_tokens = len(text_ids) - (tokenizer.bos_id is None)
        assert tokens == text_tokens and nats == pytest.approx(text_tokens * math.log(vocab), rel=1e-6)
        results[name] = bits_per_byte(nats, n_bytes)
        assert results[name] == pytest.approx(text_tokens * math.log2(vocab) / n_bytes, rel=1e-6)
    assert results["student"] != pytest.approx(results["teacher"], rel=1e-3)


# 16 steps, a check every 2 steps pooled over 2; the random teacher is overtaken within a few steps. Checkpoints
# every 4 steps, so one falls before the decision and one after it.
CAUGHT_UP = (*SHORT_RUN, *TINY_BATCH, "--training.local_batch_size", "4", "--training.steps", "16",
             "--let.stop_step", "16", "--let.stop_when", "caught_up", "--let.caught_up_every", "2",
             "--let.caught_up_window", "2", "--let.caught_up_sequences", "2", "--checkpoint.enable",
             "--checkpoint.interval", "4")


def test_caught_up_run_resumes_exactly_across_the_decision(tmp_path):
    teacher = save_tiny_teacher(tmp_path / "random_teacher", "llama")
    full = tmp_path / "full"
    log = train_ok(full, "train_configs/let_debug.toml", *CAUGHT_UP, "--let.teacher_path", str(teacher))
    decision = recorded_decision(full)
    assert decision is not None and 4 < decision["step"] < 12, log[-3000:]
    step = decision["step"]
    assert f"caught up with the teacher at step {step}" in log and f"teaching finished after step {step}" in log
    for resume_from in (4, 12):  # before the decision and after it
        resumed = tmp_path / f"resumed_{resume_from}"
        shutil.copytree(full / "checkpoint" / f"step-{resume_from}", resumed / "checkpoint" / f"step-{resume_from}")
        for kept in ("let_run.json", "let_teacher_config.json", "let_teacher_tokenizer"):  # the job's own record
            (shutil.copytree if (full / kept).is_dir() else shutil.copy)(full / kept, resumed / kept)
        if resume_from == 12:  # decided before the checkpoint: the pre-start checks must not need the teacher
            shutil.rmtree(teacher)
        log = train_ok(resumed, "train_configs/let_debug.toml", *CAUGHT_UP, "--let.teacher_path", str(teacher))
        assert f"Training starts at step {resume_from + 1}" in log
        assert ("teacher loaded" in log) is (resume_from < step)
        assert recorded_decision(resumed) == decision
        assert_same_scalars(full, resumed, ("loss_metrics/global_avg_loss",), range(resume_from + 1, 17))
