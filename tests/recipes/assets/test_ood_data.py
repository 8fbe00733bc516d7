"""recipes/assets/build_ood_data.py on a small fixture in the fortunes package's format (no network, no package
needed)."""

import json

import pytest

from recipes.assets.build_ood_data import build, documents, parse_fortunes

WISDOM = """A clash of doctrine is not a disaster -- it is an opportunity.
%
A dream will always triumph over reality, once it is given the chance.
\t\t-- Stanislaw Lem
%
%
  /\\_/\\
 ( o.o )  >^<  ~~ ## ~~ ** ++ == || [] {} <> ^^ cat
%
Short.
%
I am 100% sure that a line with a per cent sign in it is not a separator.   \n% \n"""
WORK = """A clash of doctrine is not a disaster -- it is an opportunity.
%
The reward for work well done is the opportunity to do more.
\t\t-- Jonas Salk"""


@pytest.fixture
def fortunes(tmp_path):
    folder = tmp_path / "fortunes"
    folder.mkdir()
    (folder / "wisdom").write_text(WISDOM)
    (folder / "work").write_text(WORK)
    (folder / "wisdom.dat").write_bytes(b"\x00\x00\x00\x02")  # strfile's index: never read
    return folder


def test_fortunes_split_on_percent_lines_only_and_keep_their_inner_layout():
    parsed = parse_fortunes(WISDOM)
    assert len(parsed) == 5  # the empty fortune between two separators is none
    assert parsed[1] == "A dream will always triumph over reality, once it is given the chance.\n\t\t-- Stanislaw Lem"
    assert parsed[4] == "I am 100% sure that a line with a per cent sign in it is not a separator."
    assert parse_fortunes(WORK)[-1].endswith("-- Jonas Salk")  # the last one needs no closing separator


def test_documents_keep_prose_once_in_file_order_and_name_their_source(fortunes):
    docs = list(documents(fortunes, ("wisdom", "work")))
    # the drawing (over MIN_CHARS, few letters) and "Short." go; the repeat in work is not written again
    assert [d["source"] for d in docs] == ["wisdom#0", "wisdom#1", "wisdom#4", "work#1"]
    assert docs[3]["text"].startswith("The reward for work")
    with pytest.raises(SystemExit, match=r"--fortunes .*: no file 'love' there"):
        list(documents(fortunes, ("wisdom", "love")))


def test_build_is_deterministic_and_records_package_version_and_licence(fortunes, tmp_path):
    (tmp_path / "copyright").write_text("Copyright (c) 1991 The Regents of the University of California.\n")
    first = build(fortunes, tmp_path / "a", "1:1.99.1-7.3", ("wisdom", "work"), tmp_path / "copyright")
    build(fortunes, tmp_path / "b", "1:1.99.1-7.3", ("wisdom", "work"))
    written = (tmp_path / "a" / "ood.jsonl").read_bytes()
    assert written == (tmp_path / "b" / "ood.jsonl").read_bytes()
    lines = [json.loads(line) for line in written.decode().splitlines()]
    assert lines == list(documents(fortunes, ("wisdom", "work")))
    assert first == json.loads((tmp_path / "a" / "build_info.json").read_text())
    assert first["documents"] == 4 and first["text_bytes"] == sum(len(d["text"].encode()) for d in lines)
    assert first["version"] == "1:1.99.1-7.3" and "Regents of the University of California" in first["licence"]
    assert (tmp_path / "a" / "copyright").is_file() and not (tmp_path / "b" / "copyright").exists()
