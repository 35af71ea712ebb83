"""What a probe may send back: each probes module declares, per probe, the keys of its reply and their kinds.

    REPLIES = {
        "forward": {"preds": "array", "loss": "array|none", "gradients": "map|none", "note?": "text"},
        "echo": "any",          # a test fixture's probe whose reply is its input
    }

in the probes module itself, as a plain literal (or `REPLIES["probe"] = {...}` next to a probe, after it): the
harness reads it with `ast.literal_eval` and never imports the module (it imports the submission). A reply with a
key that is not declared, without a required key (one not ending in "?"), or with a value of another kind fails
the call before any test reads it, so nothing the submission adds to a reply is kept by the harness. Kinds: array
(numpy or torch), number (int or float, not bool), flag (bool), text, none, list, map (a dict), any; "a|b" allows
either. What is inside a list or map is the grader test's to check (with the messages that say what is wrong).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

KINDS = ("array", "number", "flag", "text", "none", "list", "map", "any")


class ReplySchemaError(ValueError):
    """The probes module's REPLIES declaration itself is malformed (a grader bug)."""


def load_reply_schemas(probes_path: Path) -> dict[str, dict[str, tuple[str, ...]] | str]:
    """The REPLIES literal of a probes module: probe -> {key: allowed kinds} (or "any")."""
    tree = ast.parse(probes_path.read_text(), filename=str(probes_path))
    declared = None
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        try:
            if isinstance(target, ast.Name) and target.id == "REPLIES":
                declared = ast.literal_eval(node.value)
            elif (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                  and target.value.id == "REPLIES" and isinstance(declared, dict)):  # REPLIES["probe"] = {...}
                declared[ast.literal_eval(target.slice)] = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ReplySchemaError(f"{probes_path}:{node.lineno}: REPLIES must be a plain literal ({exc})") from None
    if declared is None:
        raise ReplySchemaError(f"{probes_path}: declares no REPLIES (the keys and kinds of each probe's reply)")
    return _parse(declared, probes_path)


def _parse(declared, source: Path) -> dict:
    if not isinstance(declared, dict):
        raise ReplySchemaError(f"{source}: REPLIES must map probe names to their reply keys")
    schemas = {}
    for probe, keys in declared.items():
        if keys == "any":
            schemas[probe] = "any"
            continue
        if not isinstance(keys, dict):
            raise ReplySchemaError(f"{source}: REPLIES[{probe!r}] must be a dict of key -> kind, or 'any'")
        parsed = {}
        for key, kinds in keys.items():
            allowed = tuple(str(kinds).split("|"))
            if not all(kind in KINDS for kind in allowed):
                raise ReplySchemaError(f"{source}: REPLIES[{probe!r}][{key!r}] = {kinds!r}; kinds are {KINDS}")
            parsed[key] = allowed
        schemas[probe] = parsed
    return schemas


def _kind_of(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, np.ndarray) or type(value).__name__ == "Tensor":
        return "array"
    return type(value).__name__


def reply_problem(probe: str, outputs: dict, schemas: dict) -> str | None:
    """Why `outputs` is not a reply `probe` may send (None when it is)."""
    schema = schemas.get(probe)
    if schema is None:
        return f"the grader declares no reply for probe {probe!r}"
    if schema == "any":
        return None
    extra = sorted(set(outputs) - {key.rstrip("?") for key in schema})
    if extra:
        return f"the reply carries keys the probe never sends: {extra[:5]}"
    for key, allowed in schema.items():
        name = key.rstrip("?")
        if name not in outputs:
            if not key.endswith("?"):
                return f"the reply lacks its {name!r} entry"
            continue
        kind = _kind_of(outputs[name])
        if "any" not in allowed and kind not in allowed:
            return f"the reply's {name!r} is a {kind}, not a {' or '.join(allowed)}"
    return None
