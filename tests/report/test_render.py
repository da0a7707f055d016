"""rehabstats.report.render and the report notebooks: parameters, thin notebooks, rendered HTML.

The renders use a small simulated cohort and are shared by the tests of this module and of
``test_html_browser.py``, ``test_polish.py`` and ``test_print.py`` (:func:`rendered_demo`: the
demo, its HTML files kept in ``tests/artifacts/reports/`` for inspection; :func:`folder_report`:
the command on a cohort folder), each made once per session.
"""

from __future__ import annotations

import ast
import atexit
import datetime as dt
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
from cli_support import run_in_process

from rehabstats import Cohort, write_cohort
from rehabstats.data.simulate import simulate_tables
from rehabstats.errors import DataWarning, ParameterError
from rehabstats.report import (
    PROVENANCE_MIMETYPE,
    REPORTS,
    RenderError,
    external_references,
    notebook_path,
    render_report,
    report_parameters,
    validate_parameters,
)
from rehabstats.report.pdf import find_chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DEMO_PARTICIPANTS = 80


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rehabstats", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=None if env is None else {**os.environ, **env},
    )


def _run_folder(prefix: str) -> Path:
    """A new temporary folder for a render shared by the whole run, removed when it ends."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def rendered_demo() -> dict[str, Path]:
    """``rehabstats demo`` on a small cohort (both reports, rendered once per session)."""
    return _demo_run()[0]


@functools.cache
def _demo_run() -> tuple[dict[str, Path], Path]:
    """The demo's reports, and the temporary folder it ran under: one whose path is too long
    for a Unix socket (see :func:`test_renders_under_a_temporary_folder_too_long_for_unix_sockets`).
    """
    deep = _run_folder("rehabstats-tmp-") / ("t" * 60) / ("u" * 60)
    deep.mkdir(parents=True)
    out = ARTIFACTS / "reports"
    result = run_cli(
        "demo", "--participants", str(DEMO_PARTICIPANTS), "--out", str(out),
        env={"TMPDIR": str(deep)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    return {name: out / f"{name}.html" for name in REPORTS}, deep


@functools.cache
def folder_report() -> tuple[subprocess.CompletedProcess, Path, Path]:
    """``rehabstats report`` on a cohort folder, run once per session: the command, the cohort
    folder and the HTML it wrote.

    A site report (three parameters on the command line) with its PDF where Chromium is
    installed (``--format pdf``: ``test_print.py``), under a Jupyter path holding a ``python3``
    kernelspec of another environment: the command must use this environment's kernel
    whatever kernelspecs Jupyter would find.
    """
    root = _run_folder("rehabstats-folder-report-")
    folder = write_cohort(simulate_tables(60, seed=3), root / "cohort")
    out = root / "out" / "by_site.html"
    broken = root / "jupyter" / "kernels" / "python3"
    broken.mkdir(parents=True)
    (broken / "kernel.json").write_text(
        json.dumps({"argv": ["/nonexistent/python", "{connection_file}"],
                    "display_name": "a python3 kernelspec of another environment",
                    "language": "python"})
    )  # fmt: skip
    pdf = ["--format", "pdf"] if find_chromium() else []
    result = run_cli(
        "report", str(folder), "--notebook", "cohort_report", "--out", str(out), *pdf,
        "-p", "group", "site", "-p", "data_cutoff", "2025-06-30", "-p", "title", "Site report",
        env={"JUPYTER_PATH": str(root / "jupyter"), "HOME": str(root / "home")},
    )  # fmt: skip
    return result, folder, out


# ---- parameters -----------------------------------------------------------------------------


def test_report_parameters_declare_type_default_and_help():
    for name in REPORTS:
        params = report_parameters(name)
        assert [p.name for p in params][:2] == ["data", "data_cutoff"]
        for p in params:
            assert p.help and p.type in {
                "str",
                "int",
                "float",
                "bool",
                "date",
                "path",
                "choice",
                "source",
            }
    group = REPORTS["cohort_report"].parameter("group")
    assert group.choices == ("arm", "site", "tendinopathy_type", "sex")


def test_validate_fills_defaults_and_parses_text():
    out = validate_parameters(
        "clinic_audit",
        {"target_adherence": "0.75", "swimmer_limit": "10", "data_cutoff": "2025-01-31",
         "site": "none"},
    )  # fmt: skip
    assert out["target_adherence"] == 0.75
    assert out["swimmer_limit"] == 10
    assert out["data_cutoff"] == "2025-01-31"
    assert out["site"] is None
    assert out["target_relapse_rate"] == 5.0  # default
    assert list(out) == [p.name for p in report_parameters("clinic_audit")]


def test_validate_accepts_python_values():
    out = validate_parameters(
        "cohort_report", {"data_cutoff": dt.date(2025, 1, 31), "demo_participants": 100.0}
    )
    assert out["data_cutoff"] == "2025-01-31"
    assert out["demo_participants"] == 100


def test_validate_reports_every_problem_with_the_valid_names():
    with pytest.raises(ParameterError) as info:
        validate_parameters(
            "cohort_report",
            {"grup": "arm", "group": "clinic", "data_cutoff": "31/01/2025",
             "demo_participants": True, "demo_seed": -1},
        )  # fmt: skip
    text = str(info.value)
    assert "unknown parameter 'grup' (did you mean 'group'?)" in text
    assert "group must be one of arm, site, tendinopathy_type, sex; got 'clinic'" in text
    assert "data_cutoff must be a date YYYY-MM-DD, got '31/01/2025'" in text
    assert "demo_participants must be a whole number, got True" in text
    assert "demo_seed must be >= 0, got -1" in text
    assert "Valid parameters of 'cohort_report':" in text and "  title (text or None)" in text


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("data", "/no/such/folder", "must be an existing folder"),
        ("config_file", "/no/such.yaml", "must be an existing file"),
        ("data_cutoff", "2025-02-30", "is not a valid date"),
        ("title", 3, "must be text"),
        ("demo_participants", "many", "must be a whole number"),
        ("demo_participants", 5, "must be >= 20"),
        ("group", None, "not None"),
    ],
)
def test_bad_values_are_explained(name, value, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        validate_parameters("cohort_report", {name: value})


def test_paths_become_absolute(tmp_path, monkeypatch):
    (tmp_path / "cohort").mkdir()
    monkeypatch.chdir(tmp_path)
    out = validate_parameters("cohort_report", {"data": "cohort"})
    assert out["data"] == str(tmp_path / "cohort")


def test_unknown_report():
    with pytest.raises(ParameterError, match="available: cohort_report, clinic_audit"):
        validate_parameters("cohort_reprot")


def test_bad_parameters_fail_before_any_kernel_starts(tmp_path, monkeypatch):
    def boom(*args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("a kernel was started or papermill was called")

    monkeypatch.setattr(papermill, "execute_notebook", boom)
    monkeypatch.setattr("rehabstats.report.render._kernel_manager_class", boom)
    with pytest.raises(ParameterError):
        render_report("cohort_report", out=tmp_path / "r.html", parameters={"group": "x"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("pain_limit: 40\n")
    with pytest.raises(ParameterError, match="pain_limit"):
        render_report("cohort_report", out=tmp_path / "r.html", parameters={"config_file": bad})
    assert not list(tmp_path.glob("r.*"))


# ---- notebooks --------------------------------------------------------------------------------


@pytest.mark.parametrize("report", list(REPORTS))
def test_notebook_parameters_cell_matches_the_declaration(report):
    inspected = papermill.inspect_notebook(str(notebook_path(report)))
    declared = {p.name: p.default for p in report_parameters(report)}
    assert list(inspected) == list(declared)
    for name, default in declared.items():
        assert ast.literal_eval(inspected[name]["default"]) == default, name


@pytest.mark.parametrize("report", list(REPORTS))
def test_notebooks_are_thin(report):
    nb = nbformat.read(notebook_path(report), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert code[1].source == "from rehabstats.report import sections"
    for cell in code[2:]:
        tree = ast.parse(cell.source)
        assert len(tree.body) == 1, cell.source  # one statement per cell
        statement = tree.body[0]
        call = statement.value
        assert isinstance(call, ast.Call), cell.source
        assert isinstance(call.func, ast.Attribute) and call.func.value.id == "sections"
        assert "def " not in cell.source and "groupby" not in cell.source
        assert all(isinstance(a, ast.Name | ast.Constant | ast.Tuple) for a in call.args)
    assert not any(c.get("outputs") for c in code)  # stored without outputs


def test_notebooks_are_ruff_clean():
    notebooks = [str(notebook_path(r)) for r in REPORTS]
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment")
    result = subprocess.run([str(ruff), "check", *notebooks], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# ---- rendering --------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every tag with its attributes, and the text of h1/h2 headings."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: dict[str, list[str]] = {"h1": [], "h2": []}
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in self.headings:
            self._open = tag
            self.headings[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.headings[self._open][-1] += data


def parse(path: Path) -> tuple[str, _Tags]:
    text = path.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(text)
    return text, parser


EXPECTED = {
    "cohort_report": {
        "h2": ["At a glance", "Participants", "Adherence", "Pain", "VISA-A",
               "Stage progression", "Relapse", "Return to running", "Appendix: definitions",
               "Appendix: analysis configuration"],
        "sections": ["header", "at_a_glance", "participant_flow", "table_one", "adherence",
                     "pain_trajectories", "pain_model", "pain_monitoring", "visa_a",
                     "time_to_stage", "stage_occupancy", "checkpoint_fidelity", "relapse",
                     "return_to_running", "definitions", "configuration"],
        "figures": 9,  # 7 and the return to running's weekly volume and ACWR distribution
    },
    "clinic_audit": {
        "h2": ["Dashboard", "Participants needing review", "Stage timelines",
               "Outcomes by site", "Appendix: definitions",
               "Appendix: targets, thresholds and configuration"],
        "sections": ["header", "audit_dashboard", "review_list", "swimmer", "participant_flow",
                     "adherence", "pain_trajectories", "pain_monitoring", "time_to_stage",
                     "relapse", "definitions", "audit_settings", "configuration"],
        "figures": 6,
    },
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("report", list(REPORTS))
def test_rendered_html_is_self_contained_without_code(report):
    html_path = rendered_demo()[report]
    text, tags = parse(html_path)
    # no code, no prompts
    assert "jp-InputArea-editor" not in text and "highlight" not in text
    assert "sections." not in text and "import " not in text
    assert "In&nbsp;[" not in text
    # nothing loaded from anywhere: no script at all, every src a data URI
    assert not [t for t, _ in tags.tags if t in ("script", "iframe", "object", "embed")]
    assert not [a for t, a in tags.tags if t == "link" and a.get("rel") == "stylesheet"]
    for tag, attrs in tags.tags:
        for key in ("src", "href", "data", "srcset"):
            value = attrs.get(key)
            if value is None or tag == "a":
                continue
            assert value.startswith("data:"), (tag, key, value[:80])
    assert external_references(text) == []
    assert not re.search(r"https?://[^\s\"'<>]*\.(?:js|css)\b", text)
    assert 'http-equiv="Content-Security-Policy"' in text
    # expected sections and figures
    assert tags.headings["h2"] == EXPECTED[report]["h2"]
    found = re.findall(r'data-rs-section="([a-z_]+)"', text)
    assert found == EXPECTED[report]["sections"]
    figures = [a for t, a in tags.tags if t == "img" and a["src"].startswith("data:image/png")]
    assert len(figures) >= EXPECTED[report]["figures"]
    assert all(a.get("alt") for a in figures)
    # header: title, cohort, cut-off, grouping, provenance
    assert tags.headings["h1"] == [REPORTS[report].title]
    for label in ("Cohort", "Data cut-off", "Compared by", "Data fingerprint"):
        assert label in text
    assert f"simulated demo cohort ({DEMO_PARTICIPANTS} participants, seed 0)" in text
    assert '<nav class="rs-toc" aria-label="Contents">' in text
    # no warnings or errors leaked into the report
    assert (
        '<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr"'
        not in text
    )
    assert "Traceback" not in text


@pytest.mark.parametrize("report", list(REPORTS))
def test_data_notes_count_rows_after_the_report_cutoff(report, tmp_path):
    # the report's data_cutoff parameter: rows after it are not analysed and the header's data
    # notes say how many, per table (the notes of every report come from the same analysis)
    from rehabstats.report import sections

    tables = simulate_tables(30, seed=4)
    folder = write_cohort(tables, tmp_path / "cohort")
    cutoff = pd.Timestamp("2024-09-30")
    pain_after = int((tables["pain"]["recorded_on"] > cutoff).sum())
    assert pain_after > 0
    analysis = sections.prepare(report, data=str(folder), data_cutoff="2024-09-30")
    html = "".join(sections.header(analysis).parts)
    assert f"pain: {pain_after} rows dated after the data cut-off 2024-09-30 are not analysed." in (
        html
    )


@pytest.mark.slow
@pytest.mark.parametrize("report", list(REPORTS))
def test_captions_name_the_interval_method_of_bounded_quantities(report):
    # adherence and pain bands in both reports, at a glance (cohort report) and the audit's
    # adherence interval (clinic audit): bounded means get the logit-transformed interval
    text = rendered_demo()[report].read_text(encoding="utf-8")
    assert "t-based" not in text
    assert text.count("logit-transformed t interval") >= 3
    assert "survey::svyciprop" in text
    assert "transform, Greenwood variance; within 0-100%" in text  # Kaplan-Meier bands


@pytest.mark.slow
@pytest.mark.parametrize("report", list(REPORTS))
def test_executed_notebook_kept_beside_with_provenance(report):
    html_path = rendered_demo()[report]
    nb = nbformat.read(html_path.with_suffix(".ipynb"), as_version=4)
    assert nb.metadata["papermill"]["parameters"]["demo_participants"] == DEMO_PARTICIPANTS
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") in ("error", "stream")]
    provenance = next(o["data"][PROVENANCE_MIMETYPE] for o in outputs
                      if PROVENANCE_MIMETYPE in o.get("data", {}))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        cohort = Cohort.from_tables(simulate_tables(DEMO_PARTICIPANTS, seed=0))
    assert provenance["fingerprint"] == cohort.fingerprint()
    assert provenance["fingerprint"] in html_path.read_text()
    assert set(provenance["versions"]) >= {"rehabstats", "pandas", "papermill", "nbconvert"}
    assert provenance["parameters"]["demo_seed"] == 0
    assert not list(html_path.parent.glob(".*.tmp"))  # atomic writes leave nothing behind


@pytest.mark.slow
def test_report_command_on_a_cohort_folder():
    """Also: the kernel is this environment's, whatever kernelspecs Jupyter would find."""
    result, folder, out = folder_report()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # quiet when not on a terminal: no progress bar, no kernel noise
    assert f"wrote {out}" in result.stdout
    text, tags = parse(out)
    assert tags.headings["h1"] == ["Site report"]
    assert "2025-06-30" in text and ">Site<" in text
    nb = nbformat.read(out.with_suffix(".ipynb"), as_version=4)
    assert nb.metadata["papermill"]["parameters"]["group"] == "site"
    assert nb.metadata["papermill"]["parameters"]["data"] == str(folder.resolve())


def test_report_command_rejects_bad_parameters(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    result = run_in_process(
        "report", str(folder), "-n", "clinic_audit", "-o", str(tmp_path / "a.html"),
        "-p", "target_adherence", "1.5", "-p", "colour", "red",
    )  # fmt: skip
    assert result.returncode == 2
    assert "target_adherence must be <= 1, got 1.5" in result.stderr
    assert "unknown parameter 'colour'" in result.stderr
    assert "Valid parameters of 'clinic_audit'" in result.stderr


@pytest.mark.slow
def test_a_failing_cell_keeps_the_notebook_and_says_where(tmp_path):
    out = tmp_path / "audit.html"
    with pytest.raises(RenderError) as info:
        render_report("clinic_audit", out=out, parameters={"site": "nowhere",
                                                           "demo_participants": 20})  # fmt: skip
    message = str(info.value)
    assert "ParameterError" in message and "site 'nowhere' is not in the data" in message
    failed = out.with_suffix(".failed.ipynb")
    assert failed.exists() and not out.exists()
    assert json.loads(failed.read_text())["cells"]


def test_a_kernel_that_cannot_start_is_a_render_error(tmp_path, monkeypatch):
    # the kernel runs on this interpreter; point it at one that does not exist
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    out = tmp_path / "audit.html"
    with pytest.raises(RenderError, match=r"report 'clinic_audit' could not start its kernel"):
        render_report("clinic_audit", out=out, parameters={"demo_participants": 20})
    assert not out.exists() and not out.with_suffix(".ipynb").exists()
    assert not list(tmp_path.glob("rehabstats-render-*"))  # the work folder is removed


@pytest.mark.slow
def test_renders_under_a_temporary_folder_too_long_for_unix_sockets():
    # Unix socket paths are limited to ~104-108 bytes; a render's kernel sockets live in its
    # work folder under the temporary folder, so a long TMPDIR must fall back to localhost TCP:
    # the demo (both reports) ran under one
    reports, deep = _demo_run()
    assert len(str(deep)) > 110
    assert all(path.exists() for path in reports.values())
    assert not list(deep.iterdir())  # each render's work folder removed


@pytest.mark.parametrize(("cores", "gated"), [(1, True), (2, True), (3, False), (8, False)])
def test_demo_staggers_kernel_starts_to_the_cores(tmp_path, monkeypatch, cores, gated):
    # with n cores, n - 1 kernels (at least one) start alongside this process's own start-up;
    # the rest wait until the first render has imported papermill
    from rehabstats.report import render as reporting

    seen = {}

    def fake_render(name, data, *, start_after=None, imported=None, **kwargs):
        seen[name] = (start_after is not None, imported is not None)
        if imported is not None:
            imported.set()
        if start_after is not None:
            assert start_after.wait(timeout=30)
        return name

    monkeypatch.setattr(reporting, "_render", fake_render)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert reporting.render_demo(tmp_path, progress=False) == ["cohort_report", "clinic_audit"]
    assert seen == {"cohort_report": (False, True), "clinic_audit": (gated, False)}


def test_demo_gate_opens_when_the_first_report_fails(tmp_path, monkeypatch):
    # the first report failing before it imports papermill must not leave the others waiting
    from rehabstats.report import render as reporting

    started = []

    def fake_render(name, data, *, start_after=None, imported=None, **kwargs):
        if name == "cohort_report":
            raise RenderError("could not start its kernel")
        assert start_after is not None and start_after.wait(timeout=30)
        started.append(name)
        return name

    monkeypatch.setattr(reporting, "_render", fake_render)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(RenderError, match="could not start its kernel"):
        reporting.render_demo(tmp_path, progress=False)
    assert started == ["clinic_audit"]
