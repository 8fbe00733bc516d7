"""The run's teacher source, decided once: the folder's (source.TeacherSource) or, in a dry run whose teacher folder
is not on this machine, a stand-in of its shape (stand_in.StandInTeacherSource). The only reader of let.teacher_path.
"""

from pathlib import Path

from torchtitan.config import JobConfig

from ..config import once
from ..dry_run import is_dry_run
from .source import TeacherSource
from .stand_in import StandInTeacherSource


def teacher_source(job_config: JobConfig) -> TeacherSource | None:
    """The run's teacher source, built once per job config (None without let.teacher_path: a baseline in its own
    tokenizer). A dry run whose teacher folder is not on this machine gets a stand-in of the teacher's shape
    (stand_in.py); everything downstream reads it as it reads the folder."""
    let = getattr(job_config, "let", None)
    if let is None or not let.teacher_path:
        return None
    return once(job_config, "teacher_source", lambda: _build_source(job_config))


def _build_source(job_config: JobConfig) -> TeacherSource:
    let, dump_folder = job_config.let, Path(job_config.job.dump_folder)
    if is_dry_run(job_config) and not (Path(let.teacher_path) / "config.json").is_file():
        return StandInTeacherSource.of(let.teacher_path, dump_folder, let.teacher_backend)
    return TeacherSource(let.teacher_path, dump_folder, let.teacher_backend)
