"""Reports with the Dask engine (issue 14, part 5): the report of a partitioned cohort, its
tables computed on a LocalCluster of 2 workers, must equal the pandas engine's report of the
same tables in one folder.

The sections run in this process (no kernel): every section each notebook shows, on the
analysis ``prepare`` returns for each engine. The reference is the pandas engine; only what
must differ is masked: the ``engine`` and ``scheduler`` parameters, the data's path, the data
fingerprint (of the partitions, by definition another digest: docs/scale.md) and the time of
the run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cli_support import environment_without_dask, run_in_process

from rehabstats import simulate_tables, write_cohort
from rehabstats.constants import notebook_dir
from rehabstats.data.partitioned import write_partitioned
from rehabstats.errors import ParameterError

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> tuple[Path, Path]:
    """A simulated cohort as a folder and as 4 partitions of the same tables (ids in order,
    as the simulator writes them: the pandas engine's row order is the participants')."""
    root = tmp_path_factory.mktemp("cluster_report")
    tables = simulate_tables(120, seed=21)
    write_cohort(tables, root / "folder", format="parquet")
    write_partitioned(tables, root / "parts", n_partitions=4)
    return root / "folder", root / "parts"


def _sections(report: str) -> list[str]:
    """The sections a report's notebook shows, in its order."""
    nb = json.loads((notebook_dir() / f"{report}.ipynb").read_text())
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return re.findall(r"sections\.(\w+)\(analysis", code)


_ENGINE_ROW = re.compile(
    r"<tr>\s*<td[^>]*>(engine|scheduler)</td>\s*<td[^>]*>[^<]*</td>\s*</tr>", re.S
)


def _rendered(analysis, report: str, data: Path) -> list[str]:
    from rehabstats.report import sections

    analysis.started_at = "<time>"
    out = []
    fingerprint = analysis.cohort.fingerprint()
    for name in _sections(report):
        block = getattr(sections, name)(analysis)
        text = block._repr_html_()
        text = _ENGINE_ROW.sub("", text).replace(str(data), "<data>")
        out.append(text.replace(fingerprint, "<fingerprint>"))
    return out


@pytest.mark.parametrize(
    ("report", "params"),
    [("cohort_report", {"group": "tendinopathy_type"}), ("clinic_audit", {})],
)
def test_a_report_on_the_cluster_equals_the_pandas_engines(cohorts, dask_scheduler, report, params):
    from rehabstats.report.analysis import prepare

    folder, parts = cohorts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the simulator's data notes: shown in the report
        expected = prepare(report, data=str(folder), **params)
        actual = prepare(report, data=str(parts), engine="dask", scheduler=dask_scheduler, **params)
    assert actual.parameters["engine"] == "dask"
    names = _sections(report)
    assert len(names) >= 8  # the notebook's sections were found
    want = _rendered(expected, report, folder)
    got = _rendered(actual, report, parts)
    for name, a, b in zip(names, want, got, strict=True):
        assert a == b, name
    # the cohort's raw tables never reached the client: only the participants table
    assert not hasattr(actual.cohort, "tables")
    assert len(actual.cohort.participants) == len(expected.cohort.participants)


def test_a_site_that_is_not_in_the_partitions_is_named(cohorts, dask_scheduler):
    from rehabstats.report.analysis import prepare

    _, parts = cohorts
    with pytest.raises(ParameterError, match=r"site 'Nowhere' is not in the data; sites: "):
        prepare("clinic_audit", data=str(parts), engine="dask", scheduler=dask_scheduler,
                site="Nowhere")  # fmt: skip


def test_report_engine_messages(cohorts, tmp_path):
    """A partitioned folder without --engine dask, a plain folder with it, and no dask
    installed: each one clear message, no traceback, no kernel started, nothing written."""
    folder, parts = cohorts
    run = ["report", "-n", "cohort_report", "--no-progress"]
    first = run_in_process(*run, str(parts), "--out", str(tmp_path / "a.html"))
    assert first.returncode == 1
    assert "is a partitioned cohort" in first.stderr and "--engine dask" in first.stderr
    second = run_in_process(
        *run, str(folder), "--out", str(tmp_path / "b.html"), "--engine", "dask"
    )
    assert second.returncode != 0
    assert "needs a partitioned cohort" in second.stderr and "rehabstats partition" in second.stderr
    # an installation without dask: a process of its own, in which ``import dask`` fails
    third = subprocess.run(
        [sys.executable, "-m", "rehabstats", *run, str(parts), "--out", str(tmp_path / "c.html"),
         "--engine", "dask"],
        capture_output=True, text=True, env=environment_without_dask(tmp_path),
    )  # fmt: skip
    assert third.returncode == 1
    assert "pip install" in third.stderr and "rehabstats[dask]" in third.stderr
    for result in (first, second, third):
        assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.html"))
