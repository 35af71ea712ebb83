"""Reply declarations: what a probe may send back, read from the probes module without importing it."""

from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.engine.harness.replies import ReplySchemaError, load_reply_schemas, reply_problem

PROBES = '''
import student_code

REPLIES = {"forward": {"preds": "array", "loss": "number|none", "note?": "text"}, "echo": "any"}


def forward():
    return student_code.forward()


def later():
    return {"ok": True}


REPLIES["later"] = {"ok": "flag"}
'''


@pytest.fixture
def schemas(tmp_path):
    path = tmp_path / "probes.py"
    path.write_text(PROBES)
    return load_reply_schemas(path)


def test_a_declared_reply_passes(schemas):
    assert reply_problem("forward", {"preds": torch.zeros(2), "loss": 1.5}, schemas) is None
    assert reply_problem("forward", {"preds": np.zeros(2), "loss": None, "note": "hi"}, schemas) is None
    assert reply_problem("later", {"ok": False}, schemas) is None  # declared next to the probe
    assert reply_problem("echo", {"anything": [1, "two"]}, schemas) is None


@pytest.mark.parametrize("probe, outputs, problem", [
    ("forward", {"preds": torch.zeros(2), "loss": 1.0, "hoard": "x" * 100}, "keys the probe never sends: ['hoard']"),
    ("forward", {"loss": 1.0}, "lacks its 'preds' entry"),
    ("forward", {"preds": [0.0, 1.0], "loss": 1.0}, "'preds' is a list, not a array"),
    ("forward", {"preds": torch.zeros(2), "loss": True}, "'loss' is a flag, not a number or none"),
    ("later", {"ok": 1}, "'ok' is a number, not a flag"),
    ("missing", {}, "declares no reply for probe 'missing'"),
])
def test_anything_else_is_named(schemas, probe, outputs, problem):
    assert problem in reply_problem(probe, outputs, schemas)


@pytest.mark.parametrize("source, message", [
    ("x = 1\n", "declares no REPLIES"),
    ("REPLIES = {'f': {'a': 'tensor'}}\n", "kinds are"),
    ("KEYS = {}\nREPLIES = {'f': KEYS}\n", "must be a plain literal"),
    ("REPLIES = {'f': ['a']}\n", "must be a dict of key -> kind"),
])
def test_a_malformed_declaration_is_a_grader_error(tmp_path, source, message):
    path = tmp_path / "probes.py"
    path.write_text(source)
    with pytest.raises(ReplySchemaError, match=message):
        load_reply_schemas(path)


def test_every_assignment_declares_every_probe():
    """Each public function of a probes module (a probe the harness may call) has a declared reply."""
    import ast

    repo = Path(__file__).resolve().parents[2]
    modules = [*repo.glob("autograder/graders/*/probes.py"), *repo.glob("tests/fixtures/engine/*/graders/probes.py")]
    assert len(modules) >= 5
    for path in modules:
        declared = load_reply_schemas(path)
        tree = ast.parse(path.read_text())
        probes = {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")}
        helpers = {"query_cross_entropy"}  # hw1: a function the probes share, returns a tensor (not a probe)
        assert probes - helpers <= set(declared), (path, sorted(probes - helpers - set(declared)))
