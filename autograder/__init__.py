"""Instructor side of the meta-learning homework kit: release tool, sandboxed grader, gradebook."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SOLUTIONS_DIR = PACKAGE_DIR / "solutions"
GRADERS_DIR = PACKAGE_DIR / "graders"
ASSIGNMENTS = ("hw1", "hw2")
