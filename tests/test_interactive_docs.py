"""docs/interactive.md's "notebook of your own" runs as written (on a small simulated cohort)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from rehabstats import simulate_cohort, write_cohort

DOC = Path(__file__).resolve().parents[1] / "docs" / "interactive.md"


def test_the_library_example_runs_and_gives_what_it_says(tmp_path):
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(code) == 1 and len(code[0].strip().splitlines()) <= 16  # about a dozen lines
    folder = write_cohort(simulate_cohort(60, seed=4), tmp_path / "sim")
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data notes of the simulated cohort
        exec(code[0].replace('"data/sim"', repr(str(folder))), scope)
    people, km = scope["people"], scope["km"]
    assert len(people) == 60 and {"arm", "adherence_sessions"} <= set(people.columns)
    assert set(km["group"]) == set(people["arm"])
    assert scope["ax"].get_lines()  # the figure has its curves
