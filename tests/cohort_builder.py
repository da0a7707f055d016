"""Hand-built cohorts for tests: only what a case is about needs writing down.

Dates can be given as ``day`` (days from that participant's enrolment) instead of the table's
date column; every other column gets a neutral default. Defaults: enrolled 2024-01-01,
site ``s1``, arm ``staged``, midportion, female, 40 years, 80 kg; a session is stage 1, 3×15
prescribed and fully completed, no load, surface or lowering time; a run lasts 30 minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from rehabstats import Cohort
from rehabstats.data.schema import DATE_COLUMNS, TABLES, table_spec

ENROLLED = "2024-01-01"

DEFAULTS: dict[str, dict[str, object]] = {
    "participants": {
        "site": "s1",
        "arm": "staged",
        "tendinopathy_type": "midportion",
        "sex": "female",
        "age_years": 40,
        "body_mass_kg": 80,
        "enrolled_on": ENROLLED,
    },
    "sessions": {
        "stage": 1,
        "prescribed_sets": 3,
        "prescribed_reps": 15,
        "completed_sets": 3,
        "completed_reps": 15,
    },
    "pain": {"timing": "morning"},
    "visa_a": {},
    "function_tests": {"side": "involved"},
    "events": {},
    "running": {"minutes": 30},
}


def _rows_to_frame(
    name: str, rows: Iterable[Mapping[str, object]], enrolled: Mapping[str, str]
) -> pd.DataFrame:
    date_column = DATE_COLUMNS.get(name)
    records = []
    for row in rows:
        record = {**DEFAULTS[name], **row}
        if "day" in record:
            day = int(record.pop("day"))
            # a participant unknown or with a broken enrolment date (cases of validation tests)
            start = pd.to_datetime(
                enrolled.get(str(record["participant_id"]), ENROLLED),
                errors="coerce",
                format="%Y-%m-%d",
            )
            start = pd.Timestamp(ENROLLED) if pd.isna(start) else start
            record[date_column] = (start + pd.Timedelta(days=day)).strftime("%Y-%m-%d")
        records.append(record)
    columns = table_spec(name).columns
    frame = pd.DataFrame(records, dtype=object)
    for column in columns:
        if column not in frame:
            frame[column] = None
    # as a CSV file would arrive: every value as text, missing as missing
    return (
        frame.astype("object").where(frame.notna(), None).map(lambda v: v if v is None else str(v))
    )


def tables_from_rows(
    participants: Iterable[Mapping[str, object]], **children: Iterable[Mapping[str, object]]
) -> dict[str, pd.DataFrame]:
    """Raw (text) tables from row dicts; see the module docstring for defaults."""
    unknown = set(children) - set(TABLES)
    if unknown:
        raise TypeError(f"unknown tables {unknown}")
    people = [{**DEFAULTS["participants"], **p} for p in participants]
    enrolled = {str(p["participant_id"]): str(p["enrolled_on"]) for p in people}
    tables = {"participants": _rows_to_frame("participants", people, enrolled)}
    for name in DATE_COLUMNS:
        tables[name] = _rows_to_frame(name, children.get(name, ()), enrolled)
    return tables


def cohort_from_rows(
    participants: Iterable[Mapping[str, object]],
    *,
    data_cutoff: str | None = None,
    **children: Iterable[Mapping[str, object]],
) -> Cohort:
    """A validated Cohort from row dicts (see :func:`tables_from_rows`)."""
    return Cohort.from_tables(tables_from_rows(participants, **children), data_cutoff=data_cutoff)


def sessions_on(participant_id: str, days: Iterable[int], **columns: object) -> list[dict]:
    """One session row per day, with the same other columns."""
    return [{"participant_id": participant_id, "day": d, **columns} for d in days]


def morning_pain(participant_id: str, values_by_day: Mapping[int, float]) -> list[dict]:
    """Morning NRS rows from {day: nrs}."""
    return [
        {"participant_id": participant_id, "day": d, "timing": "morning", "nrs": v}
        for d, v in values_by_day.items()
    ]
