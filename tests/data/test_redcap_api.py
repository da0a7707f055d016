"""The REDCap API, against a local server on 127.0.0.1 that answers as REDCap does.

The server (pytest-httpserver, a real HTTP server; the handler is tests/redcap_server.py) holds
a project made from a tables cohort (its records export and data dictionary as rehabstats
writes them) and answers the POST requests of REDCap's API for ``content=metadata``,
``content=project`` and ``content=record`` (``fields[]`` and ``records[]`` filters, the raw CSV
flat export), refusing a wrong token with HTTP 403 as REDCap does. The client under test is not
mocked: it talks HTTP to it.
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import time
import warnings

import pytest
from cli_support import run_in_process
from redcap_server import TOKEN, RedcapProject
from werkzeug import Response

from rehabstats import Cohort, CohortValidationError, load_cohort, simulate_tables
from rehabstats.data.redcap import read_redcap_api, write_redcap_export
from rehabstats.data.schema import validate_tables
from rehabstats.data.sources import read_source


@pytest.fixture(scope="module")
def tables():
    return simulate_tables(30, seed=9)


@pytest.fixture(scope="module")
def project_files(tmp_path_factory, tables):
    folder = write_redcap_export(tables, tmp_path_factory.mktemp("p") / "rc")
    return (folder / "redcap_export.csv").read_text(), (
        folder / "redcap_dictionary.csv"
    ).read_text()


@pytest.fixture
def project(httpserver, project_files):
    served = RedcapProject(*project_files)
    httpserver.expect_request("/api/", method="POST").respond_with_handler(served)
    return served


@pytest.fixture
def url(httpserver):
    return httpserver.url_for("/api/")


@pytest.fixture
def token(monkeypatch):
    monkeypatch.delenv("REHABSTATS_REDCAP_TOKEN_FILE", raising=False)
    monkeypatch.delenv("REHABSTATS_REDCAP_MAPPING", raising=False)
    monkeypatch.setenv("REHABSTATS_REDCAP_TOKEN", TOKEN)


def every_text(read) -> str:
    """Everything a read leaves for people and logs: location, problems, notes, report."""
    return "\n".join(
        [read.location, read.report.format_text(), read.report.to_json(), *read.report.warnings]
    )


def fingerprint(tables) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Cohort.from_tables(tables, loaded_on="2030-01-01").fingerprint()


def test_the_api_round_trip_keeps_the_fingerprint_and_fetches_in_batches(
    project, url, token, tables
):
    read = read_redcap_api(url, batch_size=7)
    assert read.report.ok, read.report.format_text()
    assert read.kind == "redcap-api" and read.location == url
    assert fingerprint(read.tables) == fingerprint(tables)
    records = [r for r in project.requests if r.get("content") == "record"]
    # first the record ids alone, then 30 records in batches of 7: 7, 7, 7, 7, 2
    assert records[0]["fields[0]"] == "participant_id"
    sizes = [sum(k.startswith("records[") for k in r) for r in records[1:]]
    assert sizes == [7, 7, 7, 7, 2]
    # every record request asks for the raw flat CSV export with raw headers
    for r in records:
        assert (r["format"], r["type"], r["rawOrLabel"], r["rawOrLabelHeaders"]) == (
            "csv",
            "flat",
            "raw",
            "raw",
        )
        assert r["exportCheckboxLabel"] == "false"
    # the metadata and project information are asked for once each
    assert [r["content"] for r in project.requests].count("metadata") == 1


def test_a_url_source_string_reads_the_api(project, url, token, tables):
    read = read_source(url)
    assert read.report.ok and fingerprint(read.tables) == fingerprint(tables)


def test_validation_problems_of_api_records_name_redcap_places(
    httpserver, project_files, url, token
):
    export, dictionary = project_files
    rows = list(csv.reader(io.StringIO(export)))
    header = rows[0]
    at = next(i for i, r in enumerate(rows) if r[1] == "visa_a" and r[2] == "2")
    rows[at][header.index("visa_q3")] = "12"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    httpserver.expect_request("/api/", method="POST").respond_with_handler(
        RedcapProject(buffer.getvalue(), dictionary)
    )
    read = read_redcap_api(url, batch_size=1000)
    _, checked = validate_tables(read.tables, row_offset=read.numbering, loaded_on="2030-01-01")
    [p] = read.locate(checked).problems
    assert (p.table, p.column, p.value) == ("visa_a", "q3", "12")
    assert p.where == f"record {rows[at][0]}, visa_a #2, field visa_q3"


def test_missing_data_codes_come_from_the_project(httpserver, project_files, url, token):
    export, dictionary = project_files
    rows = list(csv.reader(io.StringIO(export)))
    at = next(i for i, r in enumerate(rows) if r[1] == "running")
    rows[at][rows[0].index("run_distance_km")] = "UNK"  # one value: a missing-data code
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    httpserver.expect_request("/api/", method="POST").respond_with_handler(
        RedcapProject(
            buffer.getvalue(), dictionary, missing_codes="UNK, Unknown | NI, No information"
        )
    )
    read = read_redcap_api(url)
    notes = [w for w in read.report.warnings if "missing-data" in w]
    assert len(notes) == 1 and notes[0].counts == {"n": 1}
    assert "running.distance_km" in notes[0]
    # the value is missing in the table the validation gets (an optional column: valid)
    assert read.tables["running"]["distance_km"].isna().sum() == (
        1
        + sum(
            1 for r in rows[1:] if r[1] == "running" and r[rows[0].index("run_distance_km")] == ""
        )
    )


# --------------------------------------------------------------------------------------------
# Failures: one message each, and never the token


def only_problem(read):
    assert not read.tables
    [p] = read.report.problems
    assert TOKEN not in every_text(read)
    return p


def test_a_wrong_token_is_refused_in_one_message_without_the_token(project, url, monkeypatch):
    wrong = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
    monkeypatch.setenv("REHABSTATS_REDCAP_TOKEN", wrong)
    read = read_redcap_api(url)
    p = only_problem(read)
    assert "token was refused" in p.rule and "HTTP 403" in p.rule and p.code == "source"
    assert wrong not in every_text(read)


def test_no_token_says_where_to_put_it(project, url, monkeypatch):
    monkeypatch.delenv("REHABSTATS_REDCAP_TOKEN", raising=False)
    monkeypatch.delenv("REHABSTATS_REDCAP_TOKEN_FILE", raising=False)
    p = only_problem(read_redcap_api(url))
    assert "REHABSTATS_REDCAP_TOKEN" in p.rule and "command line" in p.rule
    assert project.requests == []  # nothing was sent


def test_token_from_a_file(project, url, monkeypatch, tmp_path, tables):
    monkeypatch.delenv("REHABSTATS_REDCAP_TOKEN", raising=False)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv("REHABSTATS_REDCAP_TOKEN_FILE", str(secret))
    read = read_redcap_api(url)
    assert read.report.ok and not read.report.warnings
    secret.chmod(0o644)  # readable by others: loaded, with a note
    read = read_redcap_api(url)
    assert read.report.ok and any("chmod 600" in w for w in read.report.warnings)


def test_a_server_error_is_one_message(httpserver, url, token):
    httpserver.expect_request("/api/", method="POST").respond_with_data("oops", status=500)
    p = only_problem(read_redcap_api(url))
    assert "failed (HTTP 500" in p.rule


def test_a_web_page_is_not_an_api(httpserver, url, token):
    httpserver.expect_request("/api/", method="POST").respond_with_data(
        "<html><body>Log in</body></html>", content_type="text/html"
    )
    p = only_problem(read_redcap_api(url))
    assert "web page" in p.rule and "/api/" in p.rule


def test_a_wrong_path_is_named(httpserver, token, monkeypatch):
    httpserver.expect_request("/api/", method="POST").respond_with_data("", status=200)
    # as a web server answers an unknown path (restored after the test: the server is shared)
    monkeypatch.setattr(httpserver, "no_handler_status_code", 404)
    p = only_problem(read_redcap_api(httpserver.url_for("/redcap/")))
    assert "no REDCap API" in p.rule and "HTTP 404" in p.rule


def test_a_redirect_names_the_address_to_use(httpserver, url, token):
    httpserver.expect_request("/api/", method="POST").respond_with_data(
        "", status=302, headers={"Location": "https://redcap.example.org/api/?x=1"}
    )
    p = only_problem(read_redcap_api(url))
    assert "redirects (HTTP 302) to https://redcap.example.org/api/" in p.rule


def test_a_server_that_does_not_answer_in_time(httpserver, url, token):
    def slow(request):
        time.sleep(1.5)
        return Response("", 200)

    httpserver.expect_request("/api/", method="POST").respond_with_handler(slow)
    started = time.monotonic()
    p = only_problem(read_redcap_api(url, timeout=(5, 0.5)))
    assert "did not answer within 0.5 s" in p.rule
    assert time.monotonic() - started < 5


def test_an_unreachable_server(token):
    with socket.socket() as s:  # a port nobody listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = only_problem(read_redcap_api(f"http://127.0.0.1:{port}/api/"))
    assert "cannot reach the REDCap server at http://127.0.0.1" in p.rule


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("http://redcap.example.org/api/", "https://"),
        (f"https://redcap.example.org/api/?token={TOKEN}", "must not hold"),
        ("https://user:secret@redcap.example.org/api/", "must not hold"),
    ],
)
def test_unsafe_addresses_are_refused_before_anything_is_sent(address, words, token):
    read = read_redcap_api(address)
    p = only_problem(read)
    assert words in p.rule
    assert "secret" not in every_text(read)


# --------------------------------------------------------------------------------------------
# The API as a cohort source: rehabstats.load_cohort and the commands


def run_cli(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    """The command in this process, with ``token`` (or none) as its only REDCap token."""
    env = {"REHABSTATS_REDCAP_TOKEN": token, "REHABSTATS_REDCAP_TOKEN_FILE": None}
    return run_in_process(*args, env=env)


def test_load_cohort_reads_the_api_with_the_folders_fingerprint(
    project, url, token, folder_fingerprint
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = load_cohort(url, loaded_on="2030-01-01")
    assert cohort.fingerprint() == folder_fingerprint
    assert (cohort.source_kind, cohort.source) == ("redcap-api", url)


def test_load_cohort_names_the_redcap_place_of_a_bad_api_value(
    httpserver, project_files, url, token
):
    export, dictionary = project_files
    rows = list(csv.reader(io.StringIO(export)))
    at = next(i for i, r in enumerate(rows) if r[1] == "pain" and r[2] == "4")
    rows[at][rows[0].index("pain_nrs")] = "11"  # NRS is 0-10
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    httpserver.expect_request("/api/", method="POST").respond_with_handler(
        RedcapProject(buffer.getvalue(), dictionary)
    )
    with pytest.raises(CohortValidationError) as info:
        load_cohort(url, loaded_on="2030-01-01")
    [p] = info.value.report.problems
    assert (p.table, p.column, p.value, p.row) == ("pain", "nrs", "11", at + 1)
    assert p.where == f"record {rows[at][0]}, pain #4, field pain_nrs"


def test_validate_reads_the_api_with_the_token_from_the_environment(
    project, url, folder_fingerprint
):
    result = run_cli("validate", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{url}: valid" in result.stdout
    assert f"fingerprint: {folder_fingerprint}" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_one_message_and_exit_1(httpserver, project_files, url, status):
    httpserver.expect_request("/api/", method="POST").respond_with_handler(
        RedcapProject(*project_files, refusal=status)
    )
    wrong = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
    result = run_cli("validate", url, token=wrong)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    # the source, then the one reason: the token, the status and where to put the right one
    assert lines[0] == f"{url}: cannot be read; nothing was loaded"
    assert len(lines) == 2 and f"the API token was refused by {url} (HTTP {status})" in lines[1]
    assert "REHABSTATS_REDCAP_TOKEN" in lines[1]
    assert wrong not in result.stdout + result.stderr


def test_an_unreachable_server_is_one_message_and_exit_1():
    with socket.socket() as s:  # a port nobody listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"http://127.0.0.1:{port}/api/"
    result = run_cli("metrics", address, "--out", "unused")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    text = result.stdout + result.stderr
    assert f"cannot reach the REDCap server at {address}" in text
    assert text.count("cannot reach") == 1


def test_a_token_on_the_command_line_is_refused_and_not_shown():
    result = run_cli("validate", f"https://redcap.example.org/api/?token={TOKEN}", token=None)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "holds a token" in result.stderr and "REHABSTATS_REDCAP_TOKEN" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
