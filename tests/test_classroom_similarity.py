"""The similarity report (copydetect) on a planted copy among independent HW1 solutions and starter-only submissions."""

import re
import shutil
from pathlib import Path

import pytest

from autograder import GRADERS_DIR
from autograder.assignment import load_assignment
from autograder.classroom.intake import find_submissions
from autograder.classroom.similarity import PAGE, compare_class, write_page
from autograder.cli import main
from validity_corpus import load_variants, replace_region

TESTS_DIR = Path(__file__).resolve().parent
TOY = TESTS_DIR / "fixtures" / "engine" / "toy"
HW1 = load_assignment(GRADERS_DIR / "hw1")  # not "hw1": from the repo root that names the release folder
# Independent solutions: the validity corpus's correct HW1 solutions written differently from the reference,
# combined so that every region a student fills is theirs; the extra credit stays the starter's stub.
INDEPENDENT = {
    "carol": {"looped_sampler_other_rng_call_order": ["DataGenerator._sample"],
              "mask_multiply_soft_target_loss_nested_forward": ["episode_sequence", "BlackBoxLearner.loss_function",
                                                                "MANN.forward"]},
    "dave": {"shuffled_copy_stacked_per_class": ["DataGenerator._sample"],
             "clone_and_zero_gather_nll_loss": ["episode_sequence"],
             "explicit_zero_state_probability_target_loss": ["BlackBoxLearner.loss_function", "MANN.forward"]},
}
EXTRA_CREDIT_STUBS = {"episode_attention_mask": 'raise NotImplementedError("TODO: implement episode_attention_mask")',
                      "AttentionLearner.forward":
                          'raise NotImplementedError("TODO: implement AttentionLearner.forward")'}
# What a student hiding a copy does: new names, functions moved, comments added.
RENAMES = {"query_order": "order_of_queries", "pool": "remaining", "chosen": "picked", "picks": "which_drawings",
           "keep": "row_mask", "out": "result", "column": "col", "images": "imgs", "labels": "lbls"}


def independent_solution(picks: dict[str, list[str]]) -> dict[str, str]:
    _, alternates = load_variants(TESTS_DIR / "fixtures" / "validity" / "hw1")
    bodies = {(a.name, edit["function"]): (edit["file"], edit["body"]) for a in alternates for edit in a.edits}
    sources = {name: (HW1.solutions_dir / name).read_text() for name in HW1.student_files}
    edits = [("hw1.py", function, body) for function, body in EXTRA_CREDIT_STUBS.items()]
    for variant, functions in picks.items():
        edits += [(bodies[(variant, function)][0], function, bodies[(variant, function)][1]) for function in functions]
    for name, function, body in edits:
        sources[name] = replace_region(sources[name], function, body, f"{name}:{function}")
    return sources


def disguised_copy(sources: dict[str, str]) -> dict[str, str]:
    copied = {}
    for name, text in sources.items():
        for old, new in RENAMES.items():
            text = re.sub(rf"\b{old}\b", new, text)
        if name == "hw1.py":  # episode_sequence moved to the end of the file
            moved = re.search(r"^def episode_sequence\b.*?(?=^(?:def|class) )", text, re.S | re.M).group(0)
            text = text.replace(moved, "") + "\n\n# helper\n" + moved
        copied[name] = text.replace("\n\n\n", "\n\n# --\n\n")
    return copied


def write_student(class_dir: Path, student: str, sources: dict[str, str]) -> None:
    (class_dir / student).mkdir(parents=True)
    for name, text in sources.items():
        (class_dir / student / name).write_text(text)


@pytest.fixture(scope="module")
def hw1_class(tmp_path_factory):
    class_dir = tmp_path_factory.mktemp("similarity") / "submissions"
    write_student(class_dir, "alice", {name: (HW1.solutions_dir / name).read_text() for name in HW1.student_files})
    carol = independent_solution(INDEPENDENT["carol"])
    write_student(class_dir, "carol", carol)
    write_student(class_dir, "dave", independent_solution(INDEPENDENT["dave"]))
    write_student(class_dir, "bob", disguised_copy(carol))
    for student in ("frank", "gina"):  # handed in the starter untouched
        write_student(class_dir, student, {name: (HW1.release_dir / name).read_text() for name in HW1.student_files})
    (class_dir / "hank").mkdir()
    (class_dir / "hank" / "notes.txt").write_text("no code")
    return class_dir


@pytest.fixture(scope="module")
def report(hw1_class):
    return compare_class(HW1, find_submissions(hw1_class))


def test_the_planted_copy_is_flagged_and_nobody_else(report):
    assert [(pair.first, pair.second) for pair in report.pairs] in ([("bob", "carol")], [("carol", "bob")])
    pair = report.pairs[0]
    assert pair.first_share > report.threshold and pair.second_share > report.threshold
    assert pair.shared_tokens > 0 and "highlight-red" in pair.first_code and "highlight-green" in pair.second_code
    assert sorted(report.compared) == ["alice", "bob", "carol", "dave", "frank", "gina"]  # the starters too
    assert set(report.not_compared) == {"hank"} and "hw1.py" in report.not_compared["hank"]


def test_the_page_shows_the_pair_with_its_shared_regions(report, tmp_path):
    page = write_page(tmp_path / PAGE, "hw1", report).read_text()
    assert page.count('<h3 id="pair-') == 1 and "bob" in page and "carol" in page
    assert "<span class='highlight-red'>" in page
    assert "-&gt; torch.Tensor" in page and "-> torch.Tensor" not in page  # the code is escaped
    assert "hank" in page and "Not compared" in page


def test_similarity_command_and_bad_threshold(hw1_class, tmp_path, capsys):
    out = tmp_path / "out" / PAGE
    assert main(["similarity", str(GRADERS_DIR / "hw1"), str(hw1_class), "-o", str(out)]) == 0
    assert "1 pair(s) above 33% among 6 submissions (1 not compared)" in capsys.readouterr().out
    assert out.is_file()
    with pytest.raises(SystemExit):
        main(["similarity", str(GRADERS_DIR / "hw1"), str(hw1_class), "--threshold", "1.5"])
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["similarity", str(GRADERS_DIR / "hw1"), str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_grade_all_writes_the_report_beside_the_summary(tmp_path, capsys):
    """The toy class, each grading cut short at once (error rows: the outputs are still written)."""
    solution = (TOY / "solution" / "toy.py").read_text()
    class_dir = tmp_path / "submissions"
    write_student(class_dir, "alice", {"toy.py": solution})
    write_student(class_dir, "bob", {"toy.py": solution.replace("rounds", "n_rounds") + "\n# mine\n"})
    write_student(class_dir, "carol", {"toy.py": (TOY / "release" / "toy.py").read_text()})
    summary = tmp_path / "summary"
    code = main(["grade-all", str(TOY / "graders"), str(class_dir), "--gradebook", str(tmp_path / "grades.db"),
                 "--summary-dir", str(summary), "--submission-timeout", "0.1", "--insecure-no-sandbox",
                 "--no-progress"])
    assert code == 1  # every grading was stopped
    assert "1 pair(s) above 33% among 3 submissions" in capsys.readouterr().err
    page = (summary / PAGE).read_text()
    assert "alice" in page and "bob" in page and page.count('<h3 id="pair-') == 1
    assert f"]({PAGE})" in (summary / "summary.md").read_text()  # the summary links to it

    shutil.rmtree(summary)
    main(["grade-all", str(TOY / "graders"), str(class_dir), "--gradebook", str(tmp_path / "grades.db"),
          "--summary-dir", str(summary), "--submission-timeout", "0.1", "--insecure-no-sandbox", "--no-progress",
          "--no-similarity"])
    assert not (summary / PAGE).exists() and PAGE not in (summary / "summary.md").read_text()
