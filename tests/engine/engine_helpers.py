"""Helpers shared by the engine's self-tests (a uniquely named module: tests/ has other conftest files)."""

import os
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "engine"
TOY = FIXTURES / "toy"
ATTACK = FIXTURES / "attack"
ATTACKS = FIXTURES / "attacks"


def sandbox_processes(uid: int) -> list[int]:
    """Pids of live (not zombie: those are dead, awaiting their reaper) processes whose real uid is `uid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry))
    return pids


def by_name(results: dict) -> dict:
    return {test["extra_data"]["id"].split("::")[-1]: test for test in results["tests"]}
