"""The Gradescope bundle: its contents, and run_autograder unpacked into a fake /autograder (AUTOGRADER_ROOT)."""

import json
from importlib import metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from autograder import GRADERS_DIR, REPO_ROOT
from autograder.assignment import load_assignment
from autograder.cli import main
from autograder.classroom import gradescope
from autograder.classroom.gradescope import tomllib

TOY = Path(__file__).resolve().parent / "fixtures" / "engine" / "toy"
SOLUTION = (TOY / "solution" / "toy.py").read_text()
FULL_SCORE = 12.2  # see test_classroom_grade_all


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "toy_autograder.zip"
    assert main(["gradescope", str(TOY / "graders"), "-o", str(path), "--without-data"]) == 0
    return path


def unpack(bundle: Path, root: Path) -> Path:
    """What Gradescope does with the bundle: unzip it (keeping permissions) into ROOT/source."""
    source = root / "source"
    with zipfile.ZipFile(bundle) as archive:
        for info in archive.infolist():
            target = source / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            target.chmod(info.external_attr >> 16 & 0o777)
    return source


def run_autograder(root: Path, files: dict[str, str]) -> dict:
    (root / "submission").mkdir(parents=True)
    for name, text in files.items():
        (root / "submission" / name).write_text(text)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    done = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((root / "results" / "results.json").read_text())


def test_bundle_contents(toy_bundle):
    with zipfile.ZipFile(toy_bundle) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        env = archive.read("bundle.env").decode()
        requirements = archive.read("requirements.txt").decode().split()
    for script in ("setup.sh", "run_autograder", "kit/data_download.sh"):
        assert infos[script].external_attr >> 16 & 0o111, f"{script} must be executable"
    names = set(infos)
    assert {"kit/autograder/engine/grade.py", "kit/autograder/engine/harness/plugin.py", "kit/omniglot_data/split.json",
            "assignment/graders/assignment.toml", "assignment/graders/test_toy.py", "assignment/graders/probes.py",
            "assignment/solution/toy.py", "assignment/release/helper.py"} <= names
    assert "assignment/release/toy.py" not in names  # the starter is not a provided file
    assert not [n for n in names if n.startswith(("kit/autograder/graders/", "kit/autograder/solutions/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    pinned = [d for d in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
              if d.startswith("torch")]
    assert f"TORCH_REQUIREMENT={pinned[0]}" in env and "SANDBOX_POLICY=auto" in env and "NEEDS_OMNIGLOT=0" in env
    assert not [r for r in requirements if r.startswith("torch")]
    assert f"numpy=={metadata.version('numpy')}" in requirements  # what the graders were developed with
    assert f"safetensors=={metadata.version('safetensors')}" in requirements
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", str(gradescope.TEMPLATES / script)], check=True)


def test_bundles_are_reproducible(toy_bundle, tmp_path):
    again = tmp_path / "again.zip"
    assert main(["gradescope", str(TOY / "graders"), "-o", str(again), "--without-data"]) == 0
    assert again.read_bytes() == toy_bundle.read_bytes()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is needed to grade")
def test_run_autograder_grades_in_a_fake_autograder_root(toy_bundle, tmp_path):
    root = tmp_path / "autograder"
    unpack(toy_bundle, root)
    results = run_autograder(root, {"toy.py": SOLUTION, "notes.txt": "ignored"})
    assert results["score"] == pytest.approx(FULL_SCORE)
    assert results["extra_data"]["sandbox"] == "bwrap"
    assert results["extra_data"]["submitted_files"] == ["toy.py"]
    assert (root / "submission" / "toy.py").read_text() == SOLUTION  # graded from a copy


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is needed to grade")
def test_only_the_harness_writes_results(toy_bundle, tmp_path):
    root = tmp_path / "autograder"
    unpack(toy_bundle, root)
    forged = json.dumps({"score": 100, "tests": []})
    attack = f'''
import os
for path in [{str(root / "results" / "results.json")!r}, "results.json", "../results/results.json",
             {str(root / "source" / "assignment" / "solution" / "toy.py")!r}]:
    try:
        with open(path, "w") as handle:
            handle.write({forged!r})
    except OSError:
        pass
os._exit(0)
'''
    results = run_autograder(root, {"toy.py": attack})
    assert (results["score"], results["max_score"]) == (0.0, 11.0)  # the harness's verdict, not the forgery
    assert len(results["tests"]) == 6 and all(t["status"] == "failed" for t in results["tests"])
    assert (root / "source" / "assignment" / "solution" / "toy.py").read_text() == SOLUTION


def test_sandbox_policy_in_a_container_without_bubblewrap(monkeypatch, capsys, tmp_path):
    from autograder.engine import sandbox

    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bubblewrap cannot start a sandbox here (exit 1)")
    assert gradescope.main(["sandbox-flag", "auto"]) == 0
    assert capsys.readouterr().out.strip() == "--insecure-no-sandbox"
    assert gradescope.main(["sandbox-flag", "bwrap"]) == 3
    assert "cannot run the grading sandbox" in capsys.readouterr().err

    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: None)
    assert gradescope.main(["sandbox-flag", "bwrap"]) == 0
    assert capsys.readouterr().out == ""

    gradescope.main(["failure-results", str(tmp_path / "r" / "results.json"), "sandbox unavailable"])
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["score"] == 0 and "sandbox unavailable" in results["output"]


@pytest.mark.skipif(not (GRADERS_DIR / "hw1" / "assignment.toml").is_file(), reason="hw1 graders not written yet")
def test_hw1_bundle_carries_hw1_only(tmp_path):
    hw1 = load_assignment(GRADERS_DIR / "hw1")  # not "hw1": from the repo root that names the release folder
    entries = {e.name: e for e in gradescope.bundle_entries(hw1)}
    for name in hw1.student_files:
        assert entries[f"assignment/solution/{name}"].data == (hw1.solutions_dir / name).read_bytes()
    assert "NEEDS_OMNIGLOT=1" in entries["bundle.env"].data.decode()
    assert not [n for n in entries if "hw2" in n]
    assert {f"assignment/graders/{p.relative_to(hw1.graders_dir).as_posix()}" for p in hw1.graders_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts} <= set(entries)


@pytest.fixture
def fake_bwrap_path():
    """PATH with a `bwrap` that fails the way it does in containers that forbid user namespaces (in a folder the
    sandbox uid can read: the check runs bwrap as that uid)."""
    with tempfile.TemporaryDirectory() as folder:
        bin_dir = Path(folder)
        bin_dir.chmod(0o755)
        (bin_dir / "bwrap").write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
        (bin_dir / "bwrap").chmod(0o755)
        yield f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_sandbox_fallback_reason_reaches_the_instructor_only(toy_bundle, tmp_path, fake_bwrap_path):
    root = tmp_path / "autograder"
    unpack(toy_bundle, root)
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "toy.py").write_text(SOLUTION)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable,
           "PATH": fake_bwrap_path}
    done = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["extra_data"]["sandbox"] == "insecure" and results["score"] == pytest.approx(FULL_SCORE)
    reason = "setting up uid map: Permission denied"
    assert reason in results["extra_data"][gradescope.SANDBOX_FALLBACK_KEY]  # kept in the results
    assert reason in done.stdout and results["stdout_visibility"] == "hidden"  # Gradescope: instructors only
    student_view = [results["output"]] + [test["output"] for test in results["tests"]]
    assert not [text for text in student_view if reason in text]
    assert "WITHOUT the sandbox" in results["output"]  # the student still learns that much


def test_record_sandbox_fallback_refuses_a_file_that_is_not_results(tmp_path, capsys):
    (tmp_path / "reason.txt").write_text("why")
    (tmp_path / "results.json").write_text("[1, 2]")
    assert gradescope.main(["record-sandbox-fallback", str(tmp_path / "results.json"),
                            str(tmp_path / "reason.txt")]) == 2
    assert "not a results.json object" in capsys.readouterr().err
    assert gradescope.main(["record-sandbox-fallback", str(tmp_path / "missing.json"),
                            str(tmp_path / "reason.txt")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_include_data_carries_the_archives_and_says_so(tmp_path):
    archives = []
    for name in ("images_background.zip", "images_evaluation.zip"):
        archives.append(tmp_path / name)
        archives[-1].write_bytes(b"zip bytes of " + name.encode())
    toy = load_assignment(TOY / "graders")
    entries = {e.name: e for e in gradescope.bundle_entries(toy, omniglot_archives=archives)}
    assert entries["omniglot/images_background.zip"].data == archives[0].read_bytes()
    assert entries["omniglot/images_evaluation.zip"].data == archives[1].read_bytes()
    assert "OMNIGLOT_BUNDLED=1" in entries["bundle.env"].data.decode()
    plain = {e.name: e for e in gradescope.bundle_entries(toy)}
    assert "OMNIGLOT_BUNDLED=0" in plain["bundle.env"].data.decode()
    assert not [name for name in plain if name.startswith("omniglot/")]


def test_include_data_refuses_missing_archives_and_contradictions(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMNIGLOT_MIRROR", raising=False)
    monkeypatch.setenv("OMNIGLOT_DATA_DIR", str(tmp_path / "data"))
    out = str(tmp_path / "b.zip")
    assert main(["gradescope", str(TOY / "graders"), "-o", out, "--include-data"]) == 2
    assert f"no Omniglot archives in {tmp_path / 'data' / 'downloads'}" in capsys.readouterr().err
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "images_background.zip").write_bytes(b"not a zip")
    (tmp_path / "mirror" / "images_evaluation.zip").write_bytes(b"not a zip")
    assert main(["gradescope", str(TOY / "graders"), "-o", out, "--include-data", "--mirror",
                 str(tmp_path / "mirror")]) == 2
    assert "corrupt or truncated zip" in capsys.readouterr().err
    assert main(["gradescope", str(TOY / "graders"), "-o", out, "--include-data", "--without-data"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(["gradescope", str(TOY / "graders"), "-o", out, "--mirror", str(tmp_path / "mirror")]) == 2
    assert "add --include-data" in capsys.readouterr().err
    assert not (tmp_path / "b.zip").exists()


def offline(command: list[str]) -> list[str]:
    """`command` in a network namespace of its own: nothing but loopback (as root: `unshare --net`)."""
    return ["unshare", "--net", *command] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net", *command]


def network_namespaces_work() -> bool:
    return shutil.which("unshare") is not None and \
        subprocess.run(offline(["true"]), capture_output=True).returncode == 0


def run_setup_offline(bundle: Path, root: Path) -> subprocess.CompletedProcess:
    """setup.sh of the bundle with the network cut; its apt and pip steps skipped (this Python has the packages)."""
    unpack(bundle, root)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable, "AUTOGRADER_SKIP_APT": "1"}
    env.pop("OMNIGLOT_MIRROR", None)
    return subprocess.run(offline(["bash", str(root / "source" / "setup.sh")]), env=env, capture_output=True,
                          text=True, timeout=900)


MIRROR = os.environ.get("OMNIGLOT_MIRROR")


@pytest.mark.slow
@pytest.mark.skipif(not network_namespaces_work(), reason="cannot make a network namespace (unshare) here")
@pytest.mark.skipif(not MIRROR, reason="OMNIGLOT_MIRROR (a folder with the two Omniglot zips) is not set")
def test_setup_builds_the_bundled_data_without_network(tmp_path):
    from omniglot_data.prepare import existing_build

    with_data, without = tmp_path / "with_data.zip", tmp_path / "without.zip"
    assert main(["gradescope", str(TOY / "graders"), "-o", str(with_data), "--include-data", "--mirror", MIRROR]) == 0
    assert main(["gradescope", str(TOY / "graders"), "-o", str(without)]) == 0

    # The control: a bundle without the archives cannot build the data here, so the network really is cut.
    cut = run_setup_offline(without, tmp_path / "control")
    assert cut.returncode == 3 and "no network" in cut.stderr, cut.stderr  # data_download.sh's exit code 3

    done = run_setup_offline(with_data, tmp_path / "autograder")
    assert done.returncode == 0, done.stderr
    assert "from the archives in the bundle (no download)" in done.stderr
    assert existing_build(tmp_path / "autograder" / "data") is not None  # complete and verified
    assert (tmp_path / "autograder" / "source").stat().st_mode & 0o777 == 0o700
