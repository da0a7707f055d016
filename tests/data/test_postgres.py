"""Cohorts in a real PostgreSQL server (the cluster .ci/run starts; skipped without one).

Each test gets a new database (``pg_database``, tests/conftest.py). Expected fingerprints come
from the same cohort read from a CSV folder (the folder reader parses text: an independent
path); expected places are the rows the test itself changed.
"""

from __future__ import annotations

import socket
import subprocess
import warnings
from urllib.parse import urlsplit

import pytest
from cli_support import run_in_process
from conftest import with_database, without_password

from rehabstats import load_cohort, write_cohort
from rehabstats.data.simulate import simulate_tables
from rehabstats.data.sources import redact
from rehabstats.errors import CohortValidationError, OutputError

psycopg = pytest.importorskip("psycopg", reason="the [sql] extra is not installed")

from rehabstats.data.sql import write_database  # noqa: E402


@pytest.fixture(scope="module")
def tables():
    return simulate_tables(40, seed=5)


@pytest.fixture(scope="module")
def folder_fingerprint(tables, tmp_path_factory):
    folder = write_cohort(tables, tmp_path_factory.mktemp("folder") / "cohort")
    return load(folder).fingerprint()


@pytest.fixture
def db(pg_database, tables):
    """A database holding the cohort as rehabstats writes it; its URL with the password."""
    write_database(tables, pg_database)
    return pg_database


def load(source, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_cohort(source, **options)


def problems_of(source, **options):
    with pytest.raises(CohortValidationError) as info:
        load(source, **options)
    return info.value.report.problems


def execute(url, *statements):
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command in this process, ``env`` added to the environment."""
    return run_in_process(*args, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- round trip -------------------------------------------------------------------------------


def test_a_cohort_round_trips_with_the_folder_fingerprint(db, tables, folder_fingerprint):
    cohort = load(db)
    assert cohort.fingerprint() == folder_fingerprint
    password = urlsplit(db).password
    assert cohort.source == redact(db) and password not in cohort.source
    assert cohort.source_kind == "postgresql"
    assert {n: len(t) for n, t in cohort.tables.items()} == {n: len(t) for n, t in tables.items()}


def test_the_database_column_types_do_not_change_what_is_read(db, folder_fingerprint):
    # the same values as text, numeric, timestamps at midnight, varchar, integer: each column is
    # read in PostgreSQL's text form and parsed by the contract, so the data are the same
    execute(
        db,
        "ALTER TABLE participants ALTER COLUMN age_years TYPE numeric",
        "ALTER TABLE participants ALTER COLUMN enrolled_on TYPE timestamp",
        "ALTER TABLE sessions ALTER COLUMN session_date TYPE timestamptz",
        "ALTER TABLE sessions ALTER COLUMN stage TYPE integer",
        "ALTER TABLE pain ALTER COLUMN timing TYPE varchar(10)",
        "ALTER TABLE pain ALTER COLUMN nrs TYPE text",
        "ALTER TABLE visa_a ALTER COLUMN q7 TYPE smallint",
    )
    assert load(db).fingerprint() == folder_fingerprint


# ---- bad input: the problem's place in the database ------------------------------------------


def test_bad_values_are_named_by_table_and_id(db):
    execute(
        db,
        "UPDATE pain SET nrs = 11 WHERE id = 7",
        "UPDATE sessions SET session_date = 'infinity' WHERE id = 3",
        "ALTER TABLE events ALTER COLUMN event_date TYPE timestamp",
        "UPDATE events SET event_date = event_date + interval '10 hours 30 minutes' WHERE id = 2",
        "UPDATE function_tests SET value = 'NaN' WHERE id = 4",
    )
    found = {(p.table, p.column): p for p in problems_of(db)}
    assert set(found) == {
        ("pain", "nrs"),
        ("sessions", "session_date"),
        ("events", "event_date"),
        ("function_tests", "value"),
    }
    # id k is the k-th record rehabstats wrote, read in key order: row k
    pain = found[("pain", "nrs")]
    assert (pain.row, pain.where, pain.value) == (7, "table public.pain, id 7", "11")
    # never a missing value: 'infinity', a time of day and NaN are each named
    date = found[("sessions", "session_date")]
    assert (date.where, date.value) == ("table public.sessions, id 3", "infinity")
    event = found[("events", "event_date")]
    assert event.where == "table public.events, id 2" and event.value.endswith(" 10:30:00")
    value = found[("function_tests", "value")]
    assert (value.value, value.rule) == ("NaN", "must be a number")


def test_the_cli_names_the_place_and_exits_1_without_a_traceback(db):
    execute(db, "UPDATE pain SET nrs = 11 WHERE id = 7")
    url, password = without_password(db)
    result = run("validate", url, env={"PGPASSWORD": password})
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"{url}: INVALID - 1 problem; nothing was loaded")
    assert "at table public.pain, id 7" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_missing_table_and_a_near_miss(db):
    execute(db, "DROP TABLE sessions", 'ALTER TABLE events RENAME TO "Events"')
    found = {p.table: p for p in problems_of(db)}
    assert set(found) == {"sessions", "events"}
    assert found["sessions"].rule.startswith(
        "required table public.sessions is not in schema public"
    )
    assert "Events looks like it" in found["events"].rule


def test_a_table_the_role_may_not_read(db, pg_database):
    url, _ = without_password(db)
    database = urlsplit(url).path.lstrip("/")
    role = f"reader_{database[-8:]}"
    execute(
        db,
        f"CREATE ROLE {role} LOGIN PASSWORD 'reader-pw-1'",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE SELECT ON pain FROM {role}",
    )
    try:
        reader = with_database(db, database, user=f"{role}:reader-pw-1")
        (problem,) = problems_of(reader)
        assert (problem.table, problem.code) == ("pain", "query")
        assert "may not read table public.pain" in problem.rule and "SELECT" in problem.rule
        execute(db, f"GRANT SELECT ON pain TO {role}")
        assert load(reader).n_participants == 40  # a role that may only read is enough
    finally:
        execute(db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_a_schema_from_the_mapping(db, folder_fingerprint):
    execute(db, "CREATE SCHEMA clinic")
    execute(
        db,
        *[
            f"ALTER TABLE {t} SET SCHEMA clinic"
            for t in ("participants", "sessions", "pain", "visa_a", "function_tests", "events",
                      "running")
        ],
        "UPDATE clinic.pain SET nrs = -2 WHERE id = 9",
    )  # fmt: skip
    (problem,) = problems_of(db, mapping={"schema": "clinic"})
    assert problem.where == "table clinic.pain, id 9"
    execute(db, "UPDATE clinic.pain SET nrs = 2 WHERE id = 9")
    assert load(db, mapping={"schema": "clinic"}).n_participants == 40
    (problem,) = problems_of(db, mapping={"schema": "klinik"})
    assert problem.code == "source" and "has no schema 'klinik'" in problem.rule


# ---- connections and credentials --------------------------------------------------------------


def test_credentials_from_pgpassword_or_a_pgpass_file(db, tmp_path, monkeypatch):
    url, password = without_password(db)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # no ~/.pgpass of this machine
    (problem,) = problems_of(url)
    assert problem.code == "source" and "asks for the password of user" in problem.rule
    monkeypatch.setenv("PGPASSWORD", password)
    assert load(url).n_participants == 40
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    parts = urlsplit(db)
    pgpass.write_text(f"{parts.hostname}:{parts.port}:*:{parts.username}:{password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert load(url).n_participants == 40


def test_a_wrong_password_is_one_clear_message(db):
    url, password = without_password(db)
    result = run("validate", url, env={"PGPASSWORD": "not-" + password})
    assert result.returncode == 1
    user = urlsplit(db).username
    assert result.stdout.splitlines() == [
        f"{url}: cannot be read; nothing was loaded",
        f"  the database server at {urlsplit(db).hostname} port {urlsplit(db).port} refused "
        f"the password of user {user} (password authentication failed): check the password "
        "in PGPASSWORD or ~/.pgpass, or the URL in the environment variable named by env: "
        "(docs/databases.md)",
    ]
    assert password not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_server_is_one_clear_message():
    port = free_port()  # nothing listens there
    result = run("validate", f"postgresql://clinic@127.0.0.1:{port}/rehab")
    assert result.returncode == 1
    assert result.stdout.splitlines()[1] == (
        f"  cannot connect to the database server at 127.0.0.1 port {port} (connection "
        "refused): check the host and port in the URL, that the server is running and that "
        "this machine may reach it"
    )
    assert "Traceback" not in result.stderr


def test_a_missing_database_is_one_clear_message(pg_server):
    (problem,) = problems_of(with_database(pg_server, "no_such_db"))
    assert "has no database 'no_such_db'" in problem.rule
    assert urlsplit(pg_server).password not in problem.rule + problem.value


def test_a_password_on_the_command_line_is_refused(db):
    result = run("validate", db)
    password = urlsplit(db).password
    assert result.returncode == 2
    assert "holds a password" in result.stderr and "PGPASSWORD" in result.stderr
    assert password not in result.stdout + result.stderr


def test_the_whole_url_from_an_environment_variable(db, monkeypatch, folder_fingerprint):
    result = run("validate", "env:CLINIC_DATABASE", env={"CLINIC_DATABASE": db})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{redact(db)}: valid")
    assert f"fingerprint: {folder_fingerprint}" in result.stdout
    assert urlsplit(db).password not in result.stdout


# ---- simulate --out postgresql://... ----------------------------------------------------------


def test_simulate_into_a_database_and_overwrite_only_its_own_tables(pg_database):
    url, password = without_password(pg_database)
    env = {"PGPASSWORD": password}
    result = run("simulate", "--participants", "25", "--seed", "4", "--out", url, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote 25 simulated participants (seed 4) to {url}:")
    assert load(pg_database).n_participants == 25
    again = run("simulate", "--participants", "30", "--out", url, env=env)
    assert again.returncode == 1 and "already holds the tables" in again.stderr
    replaced = run("simulate", "--participants", "30", "--out", url, "--overwrite", env=env)
    assert replaced.returncode == 0, replaced.stderr
    assert load(pg_database).n_participants == 30
    # a table of a contract name that rehabstats did not write is never dropped
    execute(pg_database, "DROP TABLE events", "CREATE TABLE events (note text)")
    refused = run("simulate", "--participants", "30", "--out", url, "--overwrite", env=env)
    assert refused.returncode == 1 and "which rehabstats did not write" in refused.stderr
    with psycopg.connect(pg_database) as conn:
        assert [r[0] for r in conn.execute("SELECT count(*) FROM participants")] == [30]
    with pytest.raises(OutputError, match="did not write"):
        write_database(simulate_tables(5, seed=1), pg_database, overwrite=True)


def test_simulate_refuses_a_password_and_a_file_format(pg_database):
    result = run("simulate", "--out", pg_database)
    assert result.returncode == 2 and urlsplit(pg_database).password not in result.stderr
    url, _ = without_password(pg_database)
    result = run("simulate", "--out", url, "--format", "parquet")
    assert result.returncode == 2 and "applies to a folder" in result.stderr
