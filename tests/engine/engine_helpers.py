"""Helpers shared by the engine's self-tests (a uniquely named module: tests/ has other conftest files)."""

from pathlib import Path

from autograder.engine.grade import live_process_uids

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "engine"
TOY = FIXTURES / "toy"
ATTACK = FIXTURES / "attack"
ATTACKS = FIXTURES / "attacks"


def sandbox_processes(uid: int) -> list[int]:
    """Pids of live (not zombie: those are dead, awaiting their reaper) processes whose real uid is `uid`."""
    return [pid for pid, owner in live_process_uids().items() if owner == uid]


def by_name(results: dict) -> dict:
    return {test["extra_data"]["id"].split("::")[-1]: test for test in results["tests"]}
