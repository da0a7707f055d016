"""rehabstats.data.sql on SQLite (the standard library's; PostgreSQL: test_postgres.py).

Every database here is a real SQLite file written by the code under test or by hand with
``sqlite3``; expected fingerprints come from the same cohort read from a CSV folder (text
parsed by the folder reader, an independent path).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import warnings

import pytest

pytest.importorskip("sqlalchemy", reason="the [sql] extra is not installed")

from rehabstats import load_cohort
from rehabstats.data.simulate import simulate_tables
from rehabstats.data.sql import (
    MARKER_TABLE,
    MISSING_EXTRA,
    parse_mapping,
    read_database,
    write_database,
)
from rehabstats.errors import CohortValidationError, OutputError


@pytest.fixture(scope="module")
def tables():
    return simulate_tables(40, seed=5)


@pytest.fixture
def db(tables, tmp_path):
    path = tmp_path / "cohort.db"
    write_database(tables, f"sqlite:///{path}")
    return path


def load(source, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_cohort(source, **options)


def problems_of(source, **options):
    with pytest.raises(CohortValidationError) as info:
        load(source, **options)
    return info.value.report.problems


def execute(path, *statements):
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)


# ---- round trip -------------------------------------------------------------------------------


def test_a_cohort_round_trips_with_the_folder_fingerprint(db, tables, folder_fingerprint):
    cohort = load(f"sqlite:///{db}")
    assert cohort.fingerprint() == folder_fingerprint
    assert cohort.source == f"sqlite:///{db}" and cohort.source_kind == "sqlite"
    assert {n: len(t) for n, t in cohort.tables.items()} == {n: len(t) for n, t in tables.items()}
    # the primary key rehabstats wrote is an extra column: kept, not part of the fingerprint
    assert cohort.pain["id"].tolist()[:3] == [1, 2, 3]


def test_the_tables_are_typed_and_keyed(db):
    with sqlite3.connect(db) as conn:
        info = {r[1]: (r[2], r[3], r[5]) for r in conn.execute("PRAGMA table_info(sessions)")}
        listed = {r[0] for r in conn.execute(f"SELECT table_name FROM {MARKER_TABLE}")}
    # (type, not null, primary key position)
    assert info["id"] == ("BIGINT", 1, 1)
    assert info["session_date"] == ("DATE", 1, 0)
    assert info["stage"] == ("BIGINT", 1, 0)
    assert info["load_kg"][:2] == ("DOUBLE", 0)
    assert info["surface"][:2] == ("TEXT", 0)
    assert listed == {"participants", "sessions", "pain", "visa_a", "function_tests", "events",
                      "running"}  # fmt: skip


# ---- bad input: the problem's place in the database ------------------------------------------


def test_bad_values_are_named_by_table_and_primary_key(db):
    execute(
        db,
        "UPDATE pain SET nrs = 11 WHERE id = 7",
        "UPDATE sessions SET session_date = '2024-13-01' WHERE id = 3",
        "UPDATE participants SET age_years = 'NA' WHERE id = 2",
    )
    found = {(p.table, p.column): p for p in problems_of(f"sqlite:///{db}")}
    # id k is the k-th record rehabstats wrote: the row (record number in key order) is k
    pain = found[("pain", "nrs")]
    # the column is REAL: SQLite keeps 11 as the float 11.0, shown as such
    assert (pain.row, pain.where, pain.value) == (7, "table pain, id 7", "11.0")
    date = found[("sessions", "session_date")]
    assert (date.row, date.where, date.value) == (3, "table sessions, id 3", "2024-13-01")
    assert date.rule == "must be an ISO date YYYY-MM-DD"
    age = found[("participants", "age_years")]
    assert (age.where, age.rule) == ("table participants, id 2", "must be a number")


def test_a_table_without_a_primary_key_is_read_in_a_fixed_order(tables, tmp_path):
    # the same rows stored in two physical orders read back identically, and a problem names
    # the contract's natural key
    fingerprints = []
    for order in ("ASC", "DESC"):
        path = tmp_path / f"{order}.db"
        write_database(tables, f"sqlite:///{path}")
        execute(
            path,
            "CREATE TABLE pain_copy AS SELECT participant_id, recorded_on, timing, nrs FROM pain "
            f"ORDER BY id {order}",
            "DROP TABLE pain",
            "ALTER TABLE pain_copy RENAME TO pain",
        )
        fingerprints.append(load(f"sqlite:///{path}").fingerprint())
    assert fingerprints[0] == fingerprints[1]
    first = tables["pain"].sort_values(["participant_id", "recorded_on", "timing", "nrs"]).iloc[0]
    execute(path, f"UPDATE pain SET nrs = -1 WHERE participant_id = '{first.participant_id}' AND "
            f"recorded_on = '{first.recorded_on.date()}' AND timing = '{first.timing}'")  # fmt: skip
    (problem,) = problems_of(f"sqlite:///{path}")
    assert problem.row == 1  # first in the reading order
    assert problem.where == (
        f"table pain, participant_id {first.participant_id}, "
        f"recorded_on {first.recorded_on.date()}, timing {first.timing}"
    )


def test_typed_values_are_checked_like_a_typed_file(db):
    execute(
        db, "UPDATE sessions SET stage = 2.5 WHERE id = 4", "UPDATE pain SET nrs = 'x' WHERE id = 1"
    )
    found = {(p.table, p.column): p for p in problems_of(f"sqlite:///{db}")}
    assert found[("sessions", "stage")].rule == "must be a whole number"
    assert found[("pain", "nrs")].rule == "must be a number"


def test_a_missing_required_table_is_one_problem(db):
    execute(db, "DROP TABLE sessions")
    (problem,) = problems_of(f"sqlite:///{db}")
    assert (problem.table, problem.code) == ("sessions", "relation")
    assert problem.rule.startswith("required table sessions is not in the database")
    assert "mapping file" in problem.rule


def test_a_missing_optional_table_means_no_records(db):
    execute(db, "DROP TABLE events")
    assert load(f"sqlite:///{db}").events.empty


def test_a_near_miss_of_a_table_name_is_an_error(db):
    execute(db, "ALTER TABLE pain RENAME TO pains")
    (problem,) = problems_of(f"sqlite:///{db}")
    assert (problem.table, problem.code) == ("pain", "relation")
    assert "pains looks like it" in problem.rule and "tables: pain: pains" in problem.rule


def test_a_missing_database_file_is_one_problem_and_is_not_created(tmp_path):
    missing = tmp_path / "nope.db"
    (problem,) = problems_of(f"sqlite:///{missing}")
    assert problem.code == "source" and f"{missing} does not exist" in problem.rule
    assert not missing.exists()


def test_reading_never_writes(db):
    before = db.read_bytes()
    load(f"sqlite:///{db}")
    assert db.read_bytes() == before


# ---- the mapping ------------------------------------------------------------------------------


MAPPING = """\
database: sqlite:///{db}
tables:
  participants:
    table: patients
    columns: {{participant_id: patient_code, enrolled_on: start_date}}
  pain:
    query: |
      SELECT id, participant_id, recorded_on, timing, nrs FROM diary
      WHERE kind = 'pain' ORDER BY id;
    key: id
"""


def test_a_mapping_file_renames_tables_and_columns_and_takes_queries(
    db, tmp_path, folder_fingerprint
):
    execute(
        db,
        "ALTER TABLE participants RENAME TO patients",
        "ALTER TABLE patients RENAME COLUMN participant_id TO patient_code",
        "ALTER TABLE patients RENAME COLUMN enrolled_on TO start_date",
        "ALTER TABLE pain RENAME TO diary",
        "ALTER TABLE diary ADD COLUMN kind TEXT DEFAULT 'pain'",
        # rows of another kind in the same table are not the pain diary
        "INSERT INTO diary (id, participant_id, recorded_on, timing, nrs, kind) "
        "VALUES (999999, 'nobody', '1999-01-01', 'x', 99, 'sleep')",
    )
    mapping = tmp_path / "clinic.yaml"
    mapping.write_text(MAPPING.format(db=db))
    cohort = load(mapping)
    assert cohort.fingerprint() == folder_fingerprint
    assert cohort.source_kind == "sqlite" and cohort.source == f"sqlite:///{db}"
    # the same through the Python API, the mapping as a dict
    doc = {"tables": {"participants": {"table": "patients", "columns": {
        "participant_id": "patient_code", "enrolled_on": "start_date"}},
        "pain": {"query": "SELECT * FROM diary WHERE kind = 'pain' ORDER BY id"}}}  # fmt: skip
    assert load(f"sqlite:///{db}", mapping=doc).fingerprint() == folder_fingerprint
    # a bad value in the query's rows is named by the query and its key
    execute(db, "UPDATE diary SET nrs = 12 WHERE id = 5")
    (problem,) = problems_of(mapping)
    assert (problem.table, problem.where, problem.value) == ("pain", "query pain, id 5", "12.0")
    # a bad value in a renamed column is named by the database's own column name too
    execute(db, "UPDATE diary SET nrs = 5 WHERE id = 5", "UPDATE patients SET start_date = "
            "'2024-02-30' WHERE id = 2")  # fmt: skip
    (problem,) = problems_of(mapping)
    assert (problem.table, problem.column, problem.value) == (
        "participants",
        "enrolled_on",
        "2024-02-30",
    )
    assert problem.where == "table patients, id 2, column start_date"


def test_a_mapped_table_that_is_absent_means_no_records(db, tmp_path):
    execute(db, "DROP TABLE events")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(f"database: sqlite:///{db}\ntables:\n  events: null\n")
    assert load(mapping).events.empty


def test_every_problem_of_a_mapping_is_listed_at_once():
    _, problems = parse_mapping(
        {
            "databse": "x",
            "tables": {
                "sesions": "s",
                "pain": {"table": "a", "query": "SELECT 1"},
                "events": {"table": "e", "columns": {"evnt": "kind", "note": ""}},
                "visa_a": {"tabel": "v"},
            },
        },
        origin="m.yaml",
    )
    text = "\n".join(problems)
    assert "m.yaml: unknown key 'databse' (did you mean 'database'?)" in text
    assert "tables.sesions: not a table of the data contract" in text
    assert "did you mean 'sessions'?" in text
    assert "tables.pain: give either table (a table or view name) or query (SQL)" in text
    assert "tables.events.columns: 'evnt' is not a column of events" in text
    assert "did you mean 'event'?" in text
    assert "tables.events.columns.note: must be a database column's name" in text
    assert "tables.visa_a: unknown key 'tabel' (did you mean 'table'?)" in text
    assert len(problems) == 7


def test_a_mapping_file_must_not_hold_a_password(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("database: postgresql://clinic:s3cret@db.example/rehab\n")
    (problem,) = problems_of(mapping)
    assert problem.code == "source" and "s3cret" not in problem.rule
    assert "holds a password" in problem.rule and "env:NAME" in problem.rule


def test_a_mapping_file_without_a_database_or_broken_yaml(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("schema: rehab\n")
    (problem,) = problems_of(mapping)
    assert "database: is missing" in problem.rule
    mapping.write_text("database: [unclosed\n")
    (problem,) = problems_of(mapping)
    assert "not valid YAML" in problem.rule and "line" in problem.rule


def test_a_mapped_column_or_key_that_is_not_there(db):
    (problem,) = problems_of(
        f"sqlite:///{db}",
        mapping={"tables": {"pain": {"table": "pain", "columns": {"nrs": "scor"}}}},
    )
    assert (problem.table, problem.column, problem.code) == ("pain", "nrs", "relation")
    assert "reads nrs from column 'scor', which table pain does not have" in problem.rule
    (problem,) = problems_of(
        f"sqlite:///{db}", mapping={"tables": {"pain": {"table": "pain", "key": "diary_id"}}}
    )
    assert "key names diary_id" in problem.rule


def test_a_failing_query_is_a_problem_of_its_table(db):
    (problem,) = problems_of(
        f"sqlite:///{db}", mapping={"tables": {"events": {"query": "SELECT * FROM nowhere"}}}
    )
    assert (problem.table, problem.code) == ("events", "query")
    assert "the query of the mapping failed" in problem.rule and "nowhere" in problem.rule


# ---- writing ----------------------------------------------------------------------------------


def test_tables_rehabstats_did_not_write_are_never_replaced(tables, tmp_path):
    path = tmp_path / "clinic.db"
    execute(path, "CREATE TABLE pain (x INTEGER)", "INSERT INTO pain VALUES (42)")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="already holds the tables pain|did not write"):
            write_database(tables, f"sqlite:///{path}", overwrite=overwrite)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT x FROM pain").fetchall() == [(42,)]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"pain"}  # nothing else was written


def test_a_cohort_is_replaced_only_with_overwrite(db):
    other = simulate_tables(12, seed=9)
    with pytest.raises(OutputError, match="already holds the tables"):
        write_database(other, f"sqlite:///{db}")
    write_database(other, f"sqlite:///{db}", overwrite=True)
    assert load(f"sqlite:///{db}").n_participants == 12


def test_a_failed_write_leaves_nothing(tables, tmp_path):
    path = tmp_path / "c.db"
    broken = {name: t.copy() for name, t in tables.items()}
    broken["sessions"].loc[3, "stage"] = None  # NOT NULL: the second table fails
    with pytest.raises(OutputError, match="nothing was written"):
        write_database(broken, f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_without_the_sql_extra_the_message_says_what_to_install(db):
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "import warnings; warnings.simplefilter('ignore')\n"
        "from rehabstats import load_cohort\n"
        "from rehabstats.errors import CohortValidationError\n"
        "try:\n"
        f"    load_cohort('sqlite:///{db}')\n"
        "except CohortValidationError as exc:\n"
        "    print(exc.report.format_text(source='db'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"db: cannot be read; nothing was loaded\n  {MISSING_EXTRA}"


def test_read_database_returns_the_raw_tables(db):
    read = read_database(f"sqlite:///{db}")
    assert read.kind == "sqlite" and read.report.ok
    assert read.numbering["pain"] == 1
    assert read.coordinates["pain"](__import__("numpy").array([0, 4])) == [
        "table pain, id 1",
        "table pain, id 5",
    ]


def test_a_table_recreated_under_a_name_rehabstats_wrote_is_not_its_own(db, tables):
    execute(
        db,
        "DROP TABLE events",
        "CREATE TABLE events (note TEXT)",
        "INSERT INTO events VALUES ('x')",
    )
    with pytest.raises(OutputError, match="events, which rehabstats did not write"):
        write_database(tables, f"sqlite:///{db}", overwrite=True)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT note FROM events").fetchall() == [("x",)]


def test_a_sqlite_path_in_a_mapping_file_is_relative_to_the_file(db, tmp_path, monkeypatch):
    mapping = db.parent / "clinic.yaml"
    mapping.write_text(f"database: sqlite:///{db.name}\n")
    monkeypatch.chdir(tmp_path.parent)  # not the file's folder
    assert load(mapping).source == f"sqlite:///{db}"


def test_another_postgresql_driver_is_refused_clearly():
    (problem,) = problems_of("postgresql+psycopg2://clinic@db.example/rehab")
    assert problem.code == "source" and "psycopg (3) driver" in problem.rule
