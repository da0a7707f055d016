"""Reports rendered from REDCap: an export on disk and the API of a local REDCap-compatible
server (tests/redcap_server.py, on 127.0.0.1)."""

from __future__ import annotations

import subprocess

import pytest
from cli_support import run_in_process
from redcap_server import TOKEN, RedcapProject

from rehabstats.data.redcap import write_redcap_export
from rehabstats.data.simulate import simulate_tables

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tables():
    return simulate_tables(40, seed=4)


def report(data: str, out, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``rehabstats report`` (in this process), ``env`` added to the environment."""
    return run_in_process(
        "report", data, "-n", "cohort_report", "-o", str(out), "--no-progress", env=env
    )


def test_the_report_command_renders_from_a_redcap_export(tables, tmp_path, folder_fingerprint):
    export = write_redcap_export(tables, tmp_path / "trial_export")
    out = tmp_path / "trial.html"
    result = report(str(export), out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(data fingerprint {folder_fingerprint[:12]})" in result.stdout
    html = out.read_text()
    assert f"REDCap export: {export}" in html  # the header names the kind and location
    assert folder_fingerprint in html


def test_the_report_command_renders_from_the_redcap_api_without_showing_the_token(
    tables, tmp_path, httpserver, folder_fingerprint
):
    export = write_redcap_export(tables, tmp_path / "served")
    served = RedcapProject(
        (export / "redcap_export.csv").read_text(), (export / "redcap_dictionary.csv").read_text()
    )
    httpserver.expect_request("/api/", method="POST").respond_with_handler(served)
    url = httpserver.url_for("/api/")
    out = tmp_path / "api.html"
    result = report(url, out, env={"REHABSTATS_REDCAP_TOKEN": TOKEN})
    assert result.returncode == 0, result.stdout + result.stderr
    html = out.read_text()
    assert f"REDCap API: {url}" in html and folder_fingerprint in html
    # the token travelled in the environment and POST bodies only
    for text in (html, out.with_suffix(".ipynb").read_text(), result.stdout, result.stderr):
        assert TOKEN not in text
