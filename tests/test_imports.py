"""Which heavy libraries each command imports: nothing heavy until it is used.

Each command runs in a fresh interpreter (``python -c``) that runs the command line as
``python -m rehabstats`` would and then prints the names in ``sys.modules``. An import that
creeps back to the top of a module (statsmodels in the survival estimators, pandera in the
schema, matplotlib outside plotting) makes one of these fail.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rehabstats import simulate_tables, write_cohort

_PROBE = """
import atexit, json, runpy, sys
atexit.register(lambda: sys.__stderr__.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
sys.argv = ["rehabstats", *json.loads(sys.argv[1])]
runpy.run_module("rehabstats", run_name="__main__")
"""

# never needed by a command that neither plots, renders, reads a database nor goes online
NEVER = ("matplotlib", "papermill", "nbconvert", "nbformat", "jupyter_client", "ipykernel")
NEVER += ("sqlalchemy", "psycopg", "duckdb", "requests", "openpyxl")


def modules_of(*args: str) -> set[str]:
    """The modules loaded by the end of ``rehabstats ARGS`` (which must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # a simulated cohort: every table, so every metric family (and its estimator) runs
    return write_cohort(simulate_tables(40, seed=3), tmp_path_factory.mktemp("c") / "cohort")


def test_validate_help_imports_no_scientific_library():
    modules = modules_of("validate", "--help")
    for package in ("numpy", "pandas", "pyarrow", "scipy", "statsmodels", "pandera", *NEVER):
        assert not loaded(modules, package), package


def test_validate_imports_neither_scipy_nor_statsmodels_nor_pandera(folder):
    modules = modules_of("validate", str(folder))
    assert loaded(modules, "pandas")  # the probe sees what the command imported
    # pandera checks only the columns a screen finds suspect: none in a valid cohort
    for package in ("scipy", "statsmodels", "pandera", *NEVER):
        assert not loaded(modules, package), package


def test_metrics_without_model_imports_only_the_estimators_it_uses(folder, tmp_path):
    modules = modules_of("metrics", str(folder), "--out", str(tmp_path / "m"), "--no-model")
    assert (tmp_path / "m" / "participant_metrics.csv").exists()
    for package in ("pandera", *NEVER):
        assert not loaded(modules, package), package
    # Kaplan-Meier and Aalen-Johansen come from statsmodels.duration; nothing else of it (no
    # formulas, no regression models: the trajectory model is not fitted)
    assert loaded(modules, "statsmodels.duration")
    for package in ("statsmodels.formula", "statsmodels.regression", "patsy", "formulaic"):
        assert not loaded(modules, package), package


def test_importing_the_metrics_imports_no_estimator_library():
    code = "import sys, rehabstats.metrics.outputs; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    modules = set(result.stdout.split())
    assert loaded(modules, "rehabstats.stats.survival")
    for package in ("scipy", "statsmodels", "pandera", *NEVER):
        assert not loaded(modules, package), package


def test_a_command_reading_notebooks_compiles_no_iri_grammar(folder, tmp_path):
    # nbformat imports jsonschema, which imported rfc3987_syntax (about 2 s compiling lark
    # grammars) in every report, demo, batch and notebook command; no command checks IRIs
    modules = modules_of("notebook", str(folder), "-n", "clinic_audit", "--no-lab",
                         "--out", str(tmp_path / "mine.ipynb"))  # fmt: skip
    assert (tmp_path / "mine.ipynb").exists()
    assert loaded(modules, "nbformat") and loaded(modules, "jsonschema")
    # (the name stays in sys.modules, marked absent; its grammars and their parser are not)
    assert "rfc3987_syntax.syntax_helpers" not in modules and not loaded(modules, "lark")


def _modules_after_reading_notebooks() -> list[str]:
    """Run in a batch worker: what its renders import to read and write notebooks."""
    import nbformat  # noqa: F401 (through papermill and nbconvert, as a render does)

    return sorted(sys.modules)


def test_a_batch_worker_compiles_no_iri_grammar():
    # the worker processes of `rehabstats batch` are started by spawn, not by the command line:
    # a worker set up as the batch sets it up (its initializer) reads notebooks without them
    import concurrent.futures as cf
    import multiprocessing
    import os

    from rehabstats.batch.run import _worker_init

    spawn = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        1, mp_context=spawn, initializer=_worker_init, initargs=(os.getpid(),)
    ) as pool:
        modules = set(pool.submit(_modules_after_reading_notebooks).result(timeout=300))
    assert loaded(modules, "nbformat") and loaded(modules, "jsonschema")
    assert "rfc3987_syntax.syntax_helpers" not in modules and not loaded(modules, "lark")
