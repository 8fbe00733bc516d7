"""The Qwen3 student's flavors (let_components/student/qwen3.py)."""


def test_qwen3_student_flavors_are_untied():
    """Tied qwen3 hits torch 2.13's FSDP2 duplicate-parameter check on 2+ ranks (torchtitan issues 2252, 2522)."""
    from let_components.student.qwen3 import qwen3_student_args

    assert all(not args.enable_weight_tying for args in qwen3_student_args.values())
