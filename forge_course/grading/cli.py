"""Grading verbs of ``forge-course`` (filled in by the grading work)."""


def add_verbs(verbs, fmt, epilog) -> None:  # pragma: no cover - replaced soon
    return None
