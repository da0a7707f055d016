"""REDCap: the project template, reading a records export or the API, and writing an export.

A REDCap project holds the cohort as one **record per participant** (the record id is the
``participant_id``), a non-repeating ``participants`` instrument and one **repeating
instrument** per child table (sessions, pain, VISA-A, function tests, events, running). The
template data dictionary (:func:`redcap_dictionary`, ``rehabstats redcap-template``) and the
default mapping of an export onto the contract (:func:`default_mapping`) are generated from the
table schemas in ``data_schema/`` and the REDCap layout in ``data_schema/redcap.yaml``; a
project built another way maps its fields with a small YAML file (:func:`read_mapping`).

Reading (:func:`read_redcap_export`, :func:`read_redcap_api`) turns the flat CSV "records"
export (raw values, variable names as headers) into the seven contract tables with every value
as text, exactly as a folder of CSV files would give them, so that the same validation applies
(:func:`rehabstats.data.schema.validate_tables`). Each record keeps its place in REDCap (record,
event, repeat instrument and instance, field) for the error report. Both are kinds of cohort
source (:data:`rehabstats.data.sources.SOURCE_KINDS`): ``rehabstats.load_cohort`` and every
command take an export file or folder (:func:`is_export_path`, or ``redcap:PATH``) and an API
address (``https://.../api/``). docs/redcap.md describes the whole round trip.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rehabstats.constants import data_schema_dir
from rehabstats.data.schema import TABLES, table_spec
from rehabstats.data.sources import Coordinates, Numbering, SourceTables, redact, unreadable
from rehabstats.errors import Note, OutputError, Problem, ValidationReport

__all__ = [
    "API_METADATA_COLUMNS",
    "DICTIONARY_COLUMNS",
    "DICTIONARY_FILE",
    "EXPORT_FILE",
    "MAPPING_ENV",
    "MAPPING_FILE",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "ColumnMap",
    "RedcapMapping",
    "default_mapping",
    "is_export_path",
    "read_mapping",
    "read_redcap_api",
    "read_redcap_export",
    "redcap_dictionary",
    "redcap_export",
    "write_redcap_export",
    "write_redcap_template",
]

EXPORT_FILE = "redcap_export.csv"
"""Name of the records export in a REDCap export folder."""
DICTIONARY_FILE = "redcap_dictionary.csv"
"""Name of the data dictionary beside the export."""
MAPPING_FILE = "redcap_mapping.yaml"
"""Name of the optional mapping file beside the export."""
TOKEN_ENV = "REHABSTATS_REDCAP_TOKEN"
"""Environment variable holding the REDCap API token."""
TOKEN_FILE_ENV = "REHABSTATS_REDCAP_TOKEN_FILE"
"""Environment variable naming a file that holds the REDCap API token."""
MAPPING_ENV = "REHABSTATS_REDCAP_MAPPING"
"""Environment variable naming the mapping file of an API source (or overriding the one
beside an export)."""

DICTIONARY_COLUMNS: tuple[str, ...] = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
"""The 18 columns of a REDCap data dictionary file, as REDCap imports and downloads it."""

API_METADATA_COLUMNS: tuple[str, ...] = (
    "field_name",
    "form_name",
    "section_header",
    "field_type",
    "field_label",
    "select_choices_or_calculations",
    "field_note",
    "text_validation_type_or_show_slider_number",
    "text_validation_min",
    "text_validation_max",
    "identifier",
    "branching_logic",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
)
"""The same columns as the API's ``content=metadata`` names them."""

_SPECIAL = (
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_data_access_group",
    "redcap_survey_identifier",
)
"""Columns REDCap adds to a records export that are not fields."""

_LABEL_HEADERS = frozenset(
    {"record id", "event name", "repeat instrument", "repeat instance", "complete?"}
)
"""Headers of a label export (``rawOrLabelHeaders=label``) that give it away."""

_RAW_ADVICE = (
    "export the records again choosing raw data with variable names as headers "
    "(REDCap: 'CSV / Microsoft Excel (raw data)'; API: rawOrLabel=raw, rawOrLabelHeaders=raw, "
    "exportCheckboxLabel=false)"
)


# --------------------------------------------------------------------------------------------
# The layout: data_schema/redcap.yaml and the table schemas


@cache
def _layout() -> dict[str, Any]:
    return yaml.safe_load((data_schema_dir() / "redcap.yaml").read_text(encoding="utf-8"))


@cache
def _schema_fields(table: str) -> tuple[dict[str, Any], ...]:
    """The Frictionless field descriptors of a table (with their constraints)."""
    return tuple(json.loads(table_spec(table).path.read_text())["fields"])


def _record_id() -> str:
    return str(_layout()["record_id"])


def _field_name(table: str, column: str) -> str:
    """The template's REDCap variable name of a contract column."""
    if column == _record_id():
        return column
    return f"{_layout()['instruments'][table]['prefix']}_{column}"


def _choice_label(value: object) -> str:
    labels = _layout().get("choice_labels") or {}
    text = str(value)
    if text in labels:
        return str(labels[text])
    words = text.replace("_", " ")
    return words[:1].upper() + words[1:]


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def redcap_dictionary() -> pd.DataFrame:
    """The template data dictionary: one instrument per contract table.

    Generated from ``data_schema/``: the ``participants`` instrument first (its first field,
    ``participant_id``, is the record id), then one instrument per child table (to be made
    repeating in REDCap). Field names are ``<prefix>_<column>`` (``ses_stage``); REDCap
    validation types follow the contract's types (``date_ymd``, ``integer``, ``number``) with
    its minimum and maximum; enumerations are radio buttons (dropdowns when long) whose codes
    are the contract's values; required columns are required fields; free text that may
    identify a person is tagged as an identifier (``data_schema/redcap.yaml``).

    Returns
    -------
    DataFrame
        The 18 columns of :data:`DICTIONARY_COLUMNS`, every value text.
    """
    layout = _layout()
    identifiers = set(layout.get("identifiers") or ())
    paragraphs = set(layout.get("paragraphs") or ())
    radio_max = int(layout.get("radio_max_choices", 5))
    rows = []
    for table in layout["instruments"]:
        for spec in _schema_fields(table):
            column = spec["name"]
            if column == _record_id() and table != "participants":
                continue  # the record id: a child row belongs to its record
            c = spec.get("constraints", {})
            row = dict.fromkeys(DICTIONARY_COLUMNS, "")
            row["Variable / Field Name"] = _field_name(table, column)
            row["Form Name"] = table
            row["Field Label"] = spec.get("description", column).rstrip(".")
            row["Field Annotation"] = f"rehabstats {table}.{column}"
            if "enum" in c:
                choices = c["enum"]
                row["Field Type"] = "radio" if len(choices) <= radio_max else "dropdown"
                row["Choices, Calculations, OR Slider Labels"] = " | ".join(
                    f"{v}, {_choice_label(v)}" for v in choices
                )
            elif f"{table}.{column}" in paragraphs:
                row["Field Type"] = "notes"
            else:
                row["Field Type"] = "text"
                validation = {"date": "date_ymd", "integer": "integer", "number": "number"}
                row["Text Validation Type OR Show Slider Number"] = validation.get(spec["type"], "")
                low = c.get("minimum", c.get("exclusiveMinimum"))
                if low is not None:
                    row["Text Validation Min"] = _number_text(low)
                if "maximum" in c:
                    row["Text Validation Max"] = _number_text(c["maximum"])
                if "exclusiveMinimum" in c:
                    row["Field Note"] = f"more than {_number_text(c['exclusiveMinimum'])}"
            if c.get("required") and column != _record_id():
                row["Required Field?"] = "y"
            if f"{table}.{column}" in identifiers:
                row["Identifier?"] = "y"
            rows.append(row)
    return pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS), dtype=object)


def _dictionary_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def write_redcap_template(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the template data dictionary (:func:`redcap_dictionary`) as a CSV file.

    Parameters
    ----------
    path : path
        The file to write (its folder must exist).
    overwrite : bool
        Replace an existing file; without it an existing file is refused.

    Raises
    ------
    OutputError
        The file exists (and not ``overwrite``), is a folder, or its folder is missing.
    """
    from rehabstats import files

    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target} is a folder: give the path of the dictionary file to write")
    if target.exists() and not overwrite:
        raise OutputError(
            f"{target} exists: it was not replaced (choose another file, or --overwrite)"
        )
    if not target.parent.is_dir():
        raise OutputError(f"the folder {target.parent} does not exist: nothing was written")
    return files.atomic_write(target, _dictionary_bytes(redcap_dictionary()))


# --------------------------------------------------------------------------------------------
# The mapping


@dataclass(frozen=True)
class ColumnMap:
    """Where a contract column comes from: a REDCap field and, optionally, its codes.

    ``codes`` maps a raw REDCap code (text) to the contract's value; a code it does not list
    is read as it is (and checked by the contract).
    """

    field: str
    codes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RedcapMapping:
    """How REDCap fields become the contract's tables.

    Attributes
    ----------
    tables : mapping of table to (mapping of contract column to ColumnMap)
        ``participant_id`` is never listed: it is always the record id.
    instruments : mapping of table to instrument name
        The instrument a table is read from, when the mapping file names one (checked against
        the dictionary); otherwise the instrument of its fields.
    missing_data_codes : tuple of str, optional
        The project's missing-data codes (None: not given; the API then asks the project).
    origin : str
        ``"template"`` or the mapping file.
    """

    tables: Mapping[str, Mapping[str, ColumnMap]]
    instruments: Mapping[str, str] = field(default_factory=dict)
    missing_data_codes: tuple[str, ...] | None = None
    origin: str = "template"


def default_mapping() -> RedcapMapping:
    """The mapping of a project built from the template (every contract column)."""
    tables = {
        table: {
            spec["name"]: ColumnMap(_field_name(table, spec["name"]))
            for spec in _schema_fields(table)
            if spec["name"] != _record_id()
        }
        for table in _layout()["instruments"]
    }
    return RedcapMapping(tables=tables, instruments={t: t for t in tables})


def _code_list(value: object) -> tuple[str, ...] | None:
    """Missing-data codes from a list or REDCap's ``CODE, Label | CODE, Label`` text."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [part.split(",", 1)[0] for part in value.split("|")]
    elif isinstance(value, list):
        items = [str(v) for v in value]
    else:
        return None
    return tuple(s.strip() for s in items if s.strip())


def read_mapping(
    path: str | os.PathLike | Mapping[str, Any],
) -> tuple[RedcapMapping | None, list[Problem]]:
    """Read a mapping file (YAML), or check a mapping's content; every problem at once.

    The file::

        missing_data_codes: [NI, UNK, ASKU]     # optional: the project's missing-data codes
        tables:
          participants:
            columns:
              site: centre                      # contract column: REDCap field
              sex: {field: gender, codes: {1: female, 2: male, 3: other, 9: unknown}}
          sessions:
            instrument: exercise_log            # optional: checked against the dictionary
            columns:
              session_date: log_date
              ...

    Only the tables and columns it lists are read; ``participant_id`` is the record id.
    """
    from rehabstats.config import read_yaml
    from rehabstats.errors import YamlFileError

    name = "mapping" if isinstance(path, Mapping) else Path(path).name
    problems: list[Problem] = []

    def problem(table: str, column: str | None, value: str, rule: str) -> None:
        problems.append(Problem(table, None, column, value, rule, "mapping", where=name))

    if isinstance(path, Mapping):
        doc: Any = dict(path)
    else:
        try:
            doc, _ = read_yaml(path)
        except YamlFileError as exc:
            problem("(mapping)", None, name, f"the mapping file {exc}")
            return None, problems
    if not isinstance(doc, dict):
        problem("(mapping)", None, name, "the mapping file must be a mapping with `tables:`")
        return None, problems
    for key in doc:
        if key not in ("tables", "missing_data_codes"):
            problem(
                "(mapping)", None, str(key), "unknown key: use `tables` and `missing_data_codes`"
            )
    codes = _code_list(doc.get("missing_data_codes"))
    if doc.get("missing_data_codes") is not None and codes is None:
        problem(
            "(mapping)",
            None,
            str(doc["missing_data_codes"]),
            "missing_data_codes must be a list of codes ([NI, UNK]) or REDCap's text "
            "('NI, No information | UNK, Unknown')",
        )
    raw_tables = doc.get("tables")
    if not isinstance(raw_tables, dict) or not raw_tables:
        problem(
            "(mapping)", None, name, "the mapping must list the tables it reads under `tables:`"
        )
        return None, problems
    tables: dict[str, dict[str, ColumnMap]] = {}
    instruments: dict[str, str] = {}
    for table, entry in raw_tables.items():
        table = str(table)
        if table not in TABLES:
            problem("(mapping)", None, table, f"unknown table; expected one of {', '.join(TABLES)}")
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("columns"), dict):
            problem(table, None, "", "a table needs `columns:` (contract column: REDCap field)")
            continue
        for key in entry:
            if key not in ("columns", "instrument"):
                problem(table, None, str(key), "unknown key: use `instrument` and `columns`")
        if "instrument" in entry:
            instruments[table] = str(entry["instrument"])
        spec = {f["name"]: f for f in _schema_fields(table)}
        columns: dict[str, ColumnMap] = {}
        for column, source in entry["columns"].items():
            column = str(column)
            if column == _record_id():
                problem(
                    table,
                    column,
                    str(source),
                    "participant_id is always the REDCap record id: remove it from the mapping",
                )
                continue
            if column not in spec:
                problem(table, column, str(source), f"not a column of {table}")
                continue
            if isinstance(source, str):
                columns[column] = ColumnMap(source.strip())
                continue
            if not isinstance(source, dict) or not isinstance(source.get("field"), str):
                problem(
                    table,
                    column,
                    str(source),
                    "give the REDCap field name, or {field: name, codes: {code: value}}",
                )
                continue
            extra = set(source) - {"field", "codes"}
            if extra:
                problem(table, column, ", ".join(map(str, extra)), "unknown key: use field, codes")
            mapped = source.get("codes")
            if mapped is not None and not (
                isinstance(mapped, dict)
                and all(isinstance(k, str | int) and not isinstance(k, bool) for k in mapped)
            ):
                problem(
                    table,
                    column,
                    str(mapped),
                    "codes must map each REDCap code to a value ({1: female, 2: male}); "
                    "quote codes such as yes/no, which YAML reads as true/false",
                )
                continue
            codes_map = None if mapped is None else {str(k): str(v) for k, v in mapped.items()}
            enum = spec[column].get("constraints", {}).get("enum")
            if codes_map is not None and enum is not None:
                allowed = {str(v) for v in enum}
                for code, value in codes_map.items():
                    if value not in allowed:
                        problem(
                            table,
                            column,
                            value,
                            f"code {code} maps to `{value}`, which is not one of "
                            f"{', '.join(map(str, enum))}",
                        )
            columns[column] = ColumnMap(source["field"].strip(), codes_map)
        tables[table] = columns
    return RedcapMapping(
        tables=tables, instruments=instruments, missing_data_codes=codes, origin=name
    ), problems


# --------------------------------------------------------------------------------------------
# The data dictionary of a project


@dataclass(frozen=True)
class _Dictionary:
    """The parts of a project's data dictionary the reader needs."""

    fields: tuple[str, ...]
    form: Mapping[str, str]
    type: Mapping[str, str]
    validation: Mapping[str, str]
    label: Mapping[str, str]
    choices: Mapping[str, Mapping[str, str]]
    identifiers: frozenset[str]
    no_missing: frozenset[str]

    @property
    def record_id(self) -> str:
        return self.fields[0]

    @property
    def forms(self) -> list[str]:
        return list(dict.fromkeys(self.form.values()))

    def checkbox_columns(self, name: str) -> dict[str, str]:
        """Export column -> code of each box of a checkbox field."""
        return {f"{name}___{_checkbox_suffix(code)}": code for code in self.choices.get(name, {})}


def _checkbox_suffix(code: str) -> str:
    """The export column suffix of a checkbox code (lower case, other characters ``_``)."""
    return re.sub(r"[^a-z0-9_]", "_", code.lower())


def _choices(text: str, kind: str) -> dict[str, str]:
    if kind == "yesno":
        return {"1": "Yes", "0": "No"}
    if kind == "truefalse":
        return {"1": "True", "0": "False"}
    if kind not in ("radio", "dropdown", "checkbox"):
        return {}
    out = {}
    for part in text.split("|"):
        code, _, label = part.partition(",")
        if code.strip():
            out[code.strip()] = label.strip()
    return out


def _parse_dictionary(rows: list[list[str]], name: str) -> tuple[_Dictionary | None, list[Problem]]:
    """A data dictionary from its CSV rows (file headers or the API's names)."""

    def fail(rule: str, value: str = "") -> tuple[None, list[Problem]]:
        return None, [Problem("(dictionary)", None, None, value or name, rule, "export")]

    if not rows:
        return fail(f"{name} is empty: download the project's data dictionary")
    header = [h.strip() for h in rows[0]]
    if header[:1] == ["Variable / Field Name"] or header[:1] == ["field_name"]:
        names = dict(zip(header, API_METADATA_COLUMNS, strict=False))
        if header[0] == "field_name":
            names = {h: h for h in header}
    else:
        return fail(
            f"{name} is not a REDCap data dictionary (its first column must be "
            "'Variable / Field Name'): download it from Project Setup > Data Dictionary "
            "('Download the current Data Dictionary')",
            ",".join(header[:3]),
        )
    need = {"field_name", "form_name", "field_type"}
    index = {names.get(h, h): i for i, h in enumerate(header)}
    if not need <= set(index):
        return fail(f"{name} lacks the columns {', '.join(sorted(need - set(index)))}")

    def get(row: list[str], key: str) -> str:
        i = index.get(key)
        return row[i].strip() if i is not None and i < len(row) else ""

    fields, form, kind, validation, label, choices = [], {}, {}, {}, {}, {}
    identifiers, no_missing = set(), set()
    for row in rows[1:]:
        if not any(v.strip() for v in row):
            continue
        f = get(row, "field_name")
        if not f:
            continue
        fields.append(f)
        form[f] = get(row, "form_name")
        kind[f] = get(row, "field_type")
        validation[f] = get(row, "text_validation_type_or_show_slider_number")
        label[f] = get(row, "field_label")
        choices[f] = _choices(get(row, "select_choices_or_calculations"), kind[f])
        if get(row, "identifier").lower() == "y":
            identifiers.add(f)
        if "@NOMISSING" in get(row, "field_annotation").upper():
            no_missing.add(f)
    if not fields:
        return fail(f"{name} lists no field")
    return _Dictionary(
        tuple(fields),
        form,
        kind,
        validation,
        label,
        choices,
        frozenset(identifiers),
        frozenset(no_missing),
    ), []


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"))))


# --------------------------------------------------------------------------------------------
# Reading a records export


class _Columns(Mapping):
    """The columns of a parsed export as Arrow string arrays (null for empty); values are
    worked on with Arrow compute, never one by one."""

    def __init__(self, table: Any):
        self._table = table
        self._names = list(table.column_names)
        self._done: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._done:
            if name not in self._names:
                raise KeyError(name)
            self._done[name] = self._table.column(self._names.index(name))
        return self._done[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass
class _Export:
    """A records export as text columns (only those the reader needs)."""

    header: list[str]
    columns: Mapping[str, Any]  # Arrow string arrays, null for empty
    n: int
    lines: Callable[[], np.ndarray]


def _distinct(array: Any) -> list[str]:
    """The distinct values of an Arrow array, in order of appearance, without nulls."""
    import pyarrow.compute as pc

    return [v for v in pc.unique(array).to_pylist() if v is not None]


def _mask(array: Any) -> np.ndarray:
    """An Arrow boolean array as a numpy mask (null as False)."""
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _text(array: Any) -> pd.Series:
    """An Arrow string array as a pandas text column (the dtype a CSV folder gives)."""
    import pyarrow as pa

    return pd.Series(array.to_pandas(types_mapper={pa.string(): _STR, pa.large_string(): _STR}.get))


def _read_csv_bytes(data: bytes | Path, name: str) -> tuple[_Export | None, Problem | None]:
    """Parse a records export (Arrow, every column as text); the header is checked first."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def fail(rule: str, value: str = "") -> tuple[None, Problem]:
        return None, Problem("(export)", None, None, value or name, rule, "export")

    if isinstance(data, Path):
        with data.open("rb") as f:
            head = f.read(1 << 16)
    else:
        head = data[: 1 << 16]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return fail(f"{name} is UTF-16 text: export it again as CSV (REDCap writes UTF-8)")
    if head.startswith(b"PK\x03\x04"):
        return fail(f"{name} is a workbook or a zip file, not a CSV export: {_RAW_ADVICE}")
    text = head.decode("utf-8-sig", errors="replace")
    try:
        header = next(csv.reader(io.StringIO(text)), None)
    except csv.Error:
        header = None
    if not header:
        return fail(f"{name} is empty: {_RAW_ADVICE}")
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        return fail(
            f"{name} is not comma-separated: export it again with the comma as the CSV "
            "delimiter (REDCap's export option 'CSV delimiter')",
            header[0][:60],
        )
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        return fail(f"{name} names a column twice ({', '.join(repeated)}): {_RAW_ADVICE}")
    from rehabstats.data.folder import text_convert_options

    source = pa.BufferReader(data) if isinstance(data, bytes) else str(data)
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=text_convert_options(header),
        )
    except pa.ArrowInvalid as exc:
        reason = str(exc).splitlines()[0]
        if "UTF8" in reason or "UTF-8" in reason:
            return fail(f"{name} is not UTF-8 text: export it again from REDCap as CSV")
        return fail(f"{name} is not a readable CSV export ({reason}): {_RAW_ADVICE}")

    def lines() -> np.ndarray:
        if isinstance(data, Path):
            stream: Any = data.open(newline="", encoding="utf-8-sig", errors="replace")
        else:
            stream = io.StringIO(data.decode("utf-8-sig", errors="replace"), newline="")
        starts = []
        with stream:
            reader = csv.reader(stream)
            previous, seen_header = 0, False
            for row in reader:
                start, previous = previous + 1, reader.line_num
                if not row:
                    continue
                if seen_header:
                    starts.append(start)
                seen_header = True
        found = np.asarray(starts, dtype=np.int64)
        return found if found.shape == (table.num_rows,) else np.arange(table.num_rows) + 2

    cached: list[np.ndarray] = []

    def cached_lines() -> np.ndarray:
        if not cached:
            cached.append(lines())
        return cached[0]

    return _Export(header, _Columns(table), table.num_rows, cached_lines), None


def _label_export(export: _Export, dictionary: _Dictionary, name: str) -> str | None:
    """Why the export looks like a label export (None: it does not)."""
    first = export.header[0]
    if first != dictionary.record_id:
        lowered = {h.strip().lower() for h in export.header}
        labels = {v.strip().lower() for v in dictionary.label.values() if v}
        if lowered & _LABEL_HEADERS or first.strip().lower() in labels:
            return "its headers are field labels, not variable names"
        return None
    forms = set(dictionary.forms)
    repeat = export.columns.get("redcap_repeat_instrument")
    if repeat is not None:
        seen = set(_distinct(repeat))
        if seen - forms:
            return (
                "its repeat instruments are labels ("
                + ", ".join(sorted(map(str, seen - forms))[:3])
                + "), not instrument names"
            )
    for column in export.header:
        if column.endswith("_complete") and column[: -len("_complete")] in forms:
            seen = set(_distinct(export.columns[column]))
            if seen - {"0", "1", "2"}:
                return f"its form status column {column} holds labels ({sorted(seen)[0]})"
    for f, codes in dictionary.choices.items():
        if dictionary.type.get(f) == "checkbox":
            for column in dictionary.checkbox_columns(f):
                values = export.columns.get(column)
                if values is not None and {"Checked", "Unchecked"} & set(_distinct(values)):
                    return f"its checkbox column {column} holds Checked/Unchecked"
            continue
        values = export.columns.get(f)
        if values is None or not codes:
            continue
        as_labels = {v for v in _distinct(values) if v not in codes and v in set(codes.values())}
        if as_labels:
            return f"the field {f} holds choice labels ({sorted(as_labels)[0]}), not codes"
    return None


def _mismatch(
    export: _Export, dictionary: _Dictionary, mapping: RedcapMapping, name: str
) -> tuple[str | None, list[str]]:
    """Why the export and the dictionary (and the mapping) do not belong together, and the
    identifier fields the export left out."""
    forms = set(dictionary.forms)
    known = set(dictionary.fields) | set(_SPECIAL)
    for f in dictionary.fields:
        if dictionary.type.get(f) == "checkbox":
            known |= set(dictionary.checkbox_columns(f))
    known |= {f"{form}_complete" for form in forms} | {f"{form}_timestamp" for form in forms}
    unknown = [h for h in export.header if h not in known]
    reasons = []
    if export.header[0] != dictionary.record_id:
        reasons.append(
            f"the export's first column is `{export.header[0]}`, the dictionary's record id "
            f"is `{dictionary.record_id}`"
        )
    if unknown:
        shown = ", ".join(unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        reasons.append(f"{len(unknown)} export columns are not fields of the dictionary ({shown})")
    header = set(export.header)
    absent, dropped = [], []
    for table, columns in mapping.tables.items():
        for column, source in columns.items():
            f = source.field
            present = (
                any(c in header for c in dictionary.checkbox_columns(f))
                if dictionary.type.get(f) == "checkbox"
                else f in header
            )
            if present or f not in dictionary.form:
                continue
            required = any(
                s["name"] == column and s.get("constraints", {}).get("required")
                for s in _schema_fields(table)
            )
            if f in dictionary.identifiers and not required:
                dropped.append(f)
            else:
                absent.append(f)
    if absent:
        reasons.append(
            f"{len(absent)} fields the cohort needs are not in the export ({', '.join(absent[:5])}"
            + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
            + "): export all instruments and fields, without removing fields for "
            "de-identification other than the tagged identifiers"
        )
    if not reasons:
        return None, dropped
    return "; ".join(reasons), dropped


def _mapping_problems(mapping: RedcapMapping, dictionary: _Dictionary) -> list[Problem]:
    """The mapping against the dictionary: fields exist, one instrument per child table,
    required columns mapped, codes are choices of their field."""
    where = mapping.origin
    problems = []

    def problem(table: str, column: str | None, value: str, rule: str) -> None:
        problems.append(Problem(table, None, column, value, rule, "mapping", where=where))

    for table in ("participants", "sessions"):
        if table not in mapping.tables:
            problem(table, None, "", f"the mapping must read the required table {table}")
    for table, columns in mapping.tables.items():
        spec = {s["name"]: s for s in _schema_fields(table)}
        for column, s in spec.items():
            needed = s.get("constraints", {}).get("required") and column != _record_id()
            if needed and column not in columns:
                problem(
                    table, column, "", f"the mapping gives no REDCap field for {table}.{column}"
                )
        forms = set()
        for column, source in columns.items():
            f = source.field
            if f not in dictionary.form:
                close = [x for x in dictionary.fields if x.lower() == f.lower()]
                hint = f"; did you mean `{close[0]}`?" if close else ""
                problem(table, column, f, f"`{f}` is not a field of the data dictionary{hint}")
                continue
            if f == dictionary.record_id:
                problem(table, column, f, "the record id is participant_id, not another column")
                continue
            forms.add(dictionary.form[f])
            codes = dictionary.choices.get(f) or {}
            for code in (source.codes or {}) if codes else ():
                if code not in codes:
                    problem(
                        table,
                        column,
                        code,
                        f"`{code}` is not a choice code of field `{f}` "
                        f"(its codes: {', '.join(codes)})",
                    )
        expected = mapping.instruments.get(table)
        if table != "participants" and len(forms) > 1:
            problem(
                table,
                None,
                ", ".join(sorted(forms)),
                "the fields of a child table must all be on one instrument (each instance of "
                "it is one row)",
            )
        elif (
            expected is not None and forms and forms != {expected} and mapping.origin != "template"
        ):
            problem(
                table,
                None,
                expected,
                f"the mapping names instrument `{expected}` but its fields are on "
                f"{', '.join(sorted(forms))}",
            )
    return problems


def _with_missing_codes(
    values: pd.Series, codes: frozenset[str]
) -> tuple[pd.Series, dict[str, int]]:
    """Missing-data codes as missing; how many of each were found."""
    if not codes:
        return values, {}
    hit = values.isin(list(codes))
    if not hit.any():
        return values, {}
    counts = values[hit].value_counts()
    return values.mask(hit), {str(k): int(v) for k, v in counts.items()}


def _filled(export: _Export, dictionary: _Dictionary, name: str) -> np.ndarray:
    """Whether each export row holds a value of a field (a checkbox: a ticked box)."""
    import pyarrow.compute as pc

    if dictionary.type.get(name) == "checkbox":
        out = np.zeros(export.n, dtype=bool)
        for column in dictionary.checkbox_columns(name):
            if column in export.columns:
                out |= _mask(pc.equal(export.columns[column], "1"))
        return out
    return _mask(export.columns[name].is_valid())


def _field_values(
    export: _Export,
    dictionary: _Dictionary,
    source: ColumnMap,
    rows: np.ndarray,
    codes: frozenset[str],
) -> tuple[pd.Series, dict[str, int], np.ndarray]:
    """The text of a contract column at the given export rows, the missing-data codes found,
    and whether each row holds any value (before anything is read as missing)."""
    import pyarrow.compute as pc

    f = source.field
    taken = rows if rows.size == export.n and (rows == np.arange(export.n)).all() else None
    if dictionary.type.get(f) == "checkbox":
        boxes = [
            (c, code) for c, code in dictionary.checkbox_columns(f).items() if c in export.columns
        ]
        ticked = np.zeros((rows.size, len(boxes)), dtype=bool)
        for j, (column, _) in enumerate(boxes):
            ticked[:, j] = _mask(pc.equal(export.columns[column].take(rows), "1"))
        # the ticked codes joined by | (one box is one value; several break the contract's
        # rule of the column and are reported by it as they stand)
        text = np.full(rows.size, "", dtype=object)
        for j, (_, code) in enumerate(boxes):
            joined = np.where(text == "", code, text + "|" + code)
            text = np.where(ticked[:, j], joined, text)
        text[text == ""] = None
        values = pd.Series(text, dtype="str")
        filled = ticked.any(axis=1)
        found: dict[str, int] = {}
    else:
        column = export.columns[f]
        values = _text(column if taken is not None else column.take(rows))
        filled = values.notna().to_numpy()
        values, found = _with_missing_codes(
            values, frozenset() if f in dictionary.no_missing else codes
        )
        if dictionary.validation.get(f, "").endswith("comma_decimal"):
            values = values.str.replace(",", ".", regex=False)
    if source.codes:
        mapped = values.map(dict(source.codes))
        values = mapped.where(mapped.notna(), values).astype("str")
    return values, found, filled


def _coordinates(
    export: _Export,
    rows: np.ndarray,
    fields: Mapping[str, str],
    *,
    participants: bool = False,
) -> Coordinates:
    """``positions -> ["record P001, event week_6_arm_1, sessions #3, field ses_stage", ...]``."""
    record = export.columns[export.header[0]]
    event = export.columns.get("redcap_event_name")
    instrument = export.columns.get("redcap_repeat_instrument")
    instance = export.columns.get("redcap_repeat_instance")

    def at(array: Any, r: int) -> str | None:
        return None if array is None else array[r].as_py()

    def where(positions: Sequence[int] | np.ndarray, column: str | None = None) -> list[str]:
        out = []  # one place per problem shown: a loop over problems, not over records
        for p in np.asarray(positions, dtype=np.int64).tolist():
            r = int(rows[p])
            parts = [f"record {at(record, r)}"]
            if at(event, r) is not None:
                parts.append(f"event {at(event, r)}")
            if not participants:
                if at(instrument, r) is not None:
                    parts.append(f"{at(instrument, r)} #{at(instance, r) or ''}")
                elif at(instance, r) is not None:
                    parts.append(f"instance #{at(instance, r)}")
            if column is not None and column in fields:
                parts.append(f"field {fields[column]}")
            out.append(", ".join(parts))
        return out

    return where


def _tables_from_export(
    export: _Export,
    dictionary: _Dictionary,
    mapping: RedcapMapping,
    missing_codes: Sequence[str],
    name: str,
    *,
    kind: str,
    location: str,
) -> SourceTables:
    """The contract tables (text) of a parsed export, with REDCap coordinates."""
    import pyarrow as pa
    import pyarrow.compute as pc

    report = ValidationReport()

    def fatal(rule: str) -> SourceTables:
        report.problems.append(Problem("(export)", None, None, name, rule, "export"))
        return SourceTables({}, {}, report, {}, kind, location)

    label = _label_export(export, dictionary, name)
    if label is not None:
        return fatal(
            f"{name} is a REDCap export with labels: {label}. rehabstats reads the raw "
            f"export: {_RAW_ADVICE}"
        )
    problems = _mapping_problems(mapping, dictionary)
    if problems:
        report.problems.extend(problems)
        return SourceTables({}, {}, report, {}, kind, location)
    why, dropped = _mismatch(export, dictionary, mapping, name)
    if why is not None:
        return fatal(
            f"the export does not match the data dictionary: {why}. Download the data "
            "dictionary and the records of the same project together; export raw data "
            "with variable names as headers (CSV raw)"
        )
    if dropped:
        report.warnings.append(
            Note(
                "{source}: {n} identifier {n:field is|fields are} not in the export (a "
                "de-identified export): {fields} {n:is|are} read as empty.",
                counts={"n": len(dropped)},
                source=name,
                fields=", ".join(dropped),
            )
        )
    codes = frozenset(missing_codes)
    n = export.n
    record = export.columns[export.header[0]]
    instrument = export.columns.get("redcap_repeat_instrument")
    repeating = np.zeros(n, dtype=bool) if instrument is None else _mask(instrument.is_valid())
    tables: dict[str, pd.DataFrame] = {}
    numbering: dict[str, Numbering] = {}
    coordinates: dict[str, Coordinates] = {}
    record_codes, record_ids = pd.factorize(_text(record), use_na_sentinel=False)
    header = set(export.header)

    def present(source: ColumnMap) -> bool:
        f = source.field
        if dictionary.type.get(f) == "checkbox":
            return any(c in header for c in dictionary.checkbox_columns(f))
        return f in header

    def note_codes(table: str, column: str, field_: str, found: dict[str, int]) -> None:
        if found:
            report.warnings.append(
                Note(
                    "{table}.{column} (REDCap field {field}): {n} {n:value is a|values are} "
                    "REDCap missing-data {n:code|codes} ({codes}) and {n:is|are} read as "
                    "missing.",
                    counts={"n": sum(found.values())},
                    table=table,
                    column=column,
                    field=field_,
                    codes=", ".join(sorted(found)),
                )
            )

    for table in TABLES:
        columns = mapping.tables.get(table)
        if columns is None:
            continue
        used = {c: s for c, s in columns.items() if present(s)}
        forms = {dictionary.form[s.field] for s in columns.values() if s.field in dictionary.form}
        fields = {_record_id(): dictionary.record_id, **{c: s.field for c, s in columns.items()}}
        in_form = (
            _mask(pc.is_in(instrument, value_set=pa.array(sorted(forms), pa.string())))
            if instrument is not None
            else np.zeros(n, dtype=bool)
        )
        filled = np.zeros(n, dtype=bool)
        for source in used.values():
            filled |= _filled(export, dictionary, source.field)
        if table == "participants":
            rows = np.flatnonzero((~repeating | in_form) & filled)
            first_row = np.unique(record_codes, return_index=True)[1]
            data = {_record_id(): pd.Series(record_ids.to_numpy(), dtype="str")}
            for column, source in used.items():
                values, found, _ = _field_values(export, dictionary, source, rows, codes)
                note_codes(table, column, source.field, found)
                keyed = pd.Series(values.to_numpy(), index=record_codes[rows]).dropna()
                grouped = keyed.groupby(level=0, sort=False)
                counts = grouped.nunique()
                for code in counts.index[counts.to_numpy() > 1]:
                    seen = sorted(set(keyed.loc[[code]].tolist()))
                    report.problems.append(
                        Problem(
                            table,
                            None,
                            column,
                            " / ".join(seen),
                            f"the record holds {len(seen)} different values of {source.field} "
                            "(in several events or instances): keep one",
                            "consistency",
                            where=f"record {record_ids[code]}, field {source.field}",
                        )
                    )
                column_values = pd.Series(np.nan, index=range(len(record_ids)), dtype="str")
                first = grouped.first()
                column_values.iloc[first.index.to_numpy()] = first.to_numpy()
                data[column] = column_values
            source_rows = first_row
            if rows.size:  # the record's first row holding participants data, where it has one
                has = pd.Series(rows).groupby(record_codes[rows]).min()
                source_rows = first_row.copy()
                source_rows[has.index.to_numpy()] = has.to_numpy()
            frame = pd.DataFrame(data)
            coordinates[table] = _coordinates(export, source_rows, fields, participants=True)
        else:
            rows = np.flatnonzero(in_form | (~repeating & filled))
            kept = filled[rows]
            empty = int((~kept).sum())
            if empty:
                report.warnings.append(
                    Note(
                        "{source}: {n} {n:instance|instances} of {table} {n:holds|hold} no "
                        "value and {n:is|are} not read.",
                        counts={"n": empty},
                        source=name,
                        table=table,
                    )
                )
            rows = rows[kept]
            source_rows = rows
            data = {_record_id(): _text(record.take(rows))}
            for column, source in used.items():
                values, found, _ = _field_values(export, dictionary, source, rows, codes)
                note_codes(table, column, source.field, found)
                data[column] = values
            frame = pd.DataFrame(data)
            coordinates[table] = _coordinates(export, rows, fields)
        tables[table] = frame
        numbering[table] = _lines_of(export, source_rows)
    return SourceTables(tables, numbering, report, coordinates, kind, location)


def _lines_of(export: _Export, rows: np.ndarray) -> Callable[[], np.ndarray]:
    """The export line of each record of a table, worked out only when a problem is shown."""
    return lambda: export.lines()[rows]


def read_redcap_export(
    export: str | os.PathLike,
    dictionary: str | os.PathLike | None = None,
    *,
    mapping: str | os.PathLike | Mapping[str, Any] | RedcapMapping | None = None,
) -> SourceTables:
    """Read a REDCap records export (flat CSV, raw) into the contract's tables, as text.

    Parameters
    ----------
    export : path
        The records export file, or a folder holding it (``redcap_export.csv``, or the one
        ``*_DATA_*.csv`` file REDCap names it).
    dictionary : path, optional
        The project's data dictionary. Default: ``redcap_dictionary.csv`` beside the export
        (or the one ``*_DataDictionary_*.csv`` file there).
    mapping : path, mapping or RedcapMapping, optional
        How fields map onto the contract (a mapping file, or its content as a dict). Default:
        ``$REHABSTATS_REDCAP_MAPPING``, else ``redcap_mapping.yaml`` beside the export, else
        the template's mapping.

    Returns
    -------
    SourceTables
        Tables with every value as text (missing as missing), each record's row the line of
        the export where it starts, and REDCap coordinates (record, event, repeat instrument
        and instance, field) for every record; problems of the export itself (a label export,
        a dictionary that does not match, a mapping error) and data notes (missing-data codes
        read as missing, empty instances) in the report.
    """
    path = Path(export).expanduser()
    location = str(export)
    report = ValidationReport()
    kind = "redcap-export"

    def fatal(table: str, value: str, rule: str) -> SourceTables:
        report.problems.append(Problem(table, None, None, value, rule, "export"))
        return SourceTables({}, {}, report, {}, kind, location)

    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        found = _find_one(path, EXPORT_FILE, "*_DATA_*.csv", exclude="_DATA_LABELS_")
        if isinstance(found, str):
            labels = sorted(p.name for p in path.glob("*_DATA_LABELS_*.csv"))
            if labels and found.startswith("no"):
                return fatal(
                    "(export)",
                    labels[0],
                    f"{labels[0]} is a REDCap export with labels: rehabstats reads the raw "
                    f"export: {_RAW_ADVICE}",
                )
            return fatal("(export)", str(path), f"{found} in the folder {path}")
        path = found
    elif not path.is_file():
        return fatal(
            "(export)", str(path), f"{path} must be a REDCap records export (CSV) or its folder"
        )
    if dictionary is None:
        found = _find_one(folder, DICTIONARY_FILE, "*_DataDictionary_*.csv")
        if isinstance(found, str):
            return fatal(
                "(dictionary)",
                str(folder),
                f"{found.replace('files', 'data dictionaries')} beside the export: download "
                f"the data dictionary of the same project (Project Setup > Data Dictionary) "
                f"and save it as {DICTIONARY_FILE} beside the export",
            )
        dictionary = found
    dictionary = Path(dictionary)
    mapping, problems = _chosen_mapping(mapping, folder)
    if mapping is None:
        report.problems.extend(problems)
        return SourceTables({}, {}, report, {}, kind, location)
    try:
        dict_rows = _csv_rows(dictionary.read_bytes())
    except OSError as exc:
        return fatal(
            "(dictionary)", str(dictionary), f"{dictionary} cannot be read: {exc.strerror or exc}"
        )
    parsed, problems = _parse_dictionary(dict_rows, dictionary.name)
    if parsed is None:
        report.problems.extend(problems)
        return SourceTables({}, {}, report, {}, kind, location)
    try:
        data, problem = _read_csv_bytes(path, path.name)
    except OSError as exc:
        return fatal("(export)", str(path), f"{path} cannot be read: {exc.strerror or exc}")
    if data is None:
        report.problems.append(problem)
        return SourceTables({}, {}, report, {}, kind, location)
    return _tables_from_export(
        data,
        parsed,
        mapping,
        mapping.missing_data_codes or (),
        path.name,
        kind=kind,
        location=location,
    )


def _chosen_mapping(
    mapping: str | os.PathLike | Mapping[str, Any] | RedcapMapping | None, beside: Path | None
) -> tuple[RedcapMapping | None, list[Problem]]:
    """The mapping to read with: the one given, else ``$REHABSTATS_REDCAP_MAPPING``, else
    ``redcap_mapping.yaml`` in the folder ``beside`` (an export's), else the template's; or
    None and every problem of the mapping."""
    if isinstance(mapping, RedcapMapping):
        return mapping, []
    near = None if beside is None else beside / MAPPING_FILE
    chosen = mapping or os.environ.get(MAPPING_ENV) or (near if near and near.is_file() else None)
    if not chosen:
        return default_mapping(), []
    found, problems = read_mapping(chosen)
    return (None if problems else found), problems


def _find_one(folder: Path, name: str, pattern: str, *, exclude: str = "") -> Path | str:
    """``folder/name``, else the one file matching ``pattern``; or why there is none."""
    if (folder / name).is_file():
        return folder / name
    matches = sorted(
        p for p in folder.glob(pattern) if p.is_file() and not (exclude and exclude in p.name)
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        return f"no {name} (nor a REDCap download named {pattern})"
    names = ", ".join(p.name for p in matches[:4])
    return f"several files ({names}): keep one, or name it {name}"


# --------------------------------------------------------------------------------------------
# The API


class _ApiError(Exception):
    """A failure of the API, as the one message shown (never with the token)."""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token() -> tuple[str | None, str | None, list[Note]]:
    """The API token from the environment or a file; or why there is none. Never printed."""
    direct = os.environ.get(TOKEN_ENV)
    path = os.environ.get(TOKEN_FILE_ENV)
    notes: list[Note] = []
    if direct and path:
        return None, f"both {TOKEN_ENV} and {TOKEN_FILE_ENV} are set: set one", notes
    if direct:
        token = direct.strip()
    elif path:
        try:
            mode = os.stat(path).st_mode
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            return None, f"the token file named by {TOKEN_FILE_ENV} cannot be read: {reason}", notes
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            notes.append(
                Note(
                    "the REDCap token file {path} can be read by other users: restrict it "
                    "(chmod 600).",
                    path=path,
                )
            )
    else:
        return (
            None,
            f"no REDCap API token: set the environment variable {TOKEN_ENV} to the project's "
            f"API token, or {TOKEN_FILE_ENV} to a file holding it (never on the command line)",
            notes,
        )
    if not token or any(ch.isspace() for ch in token) or not token.isascii():
        return (
            None,
            "the REDCap API token is empty or not a token (one word of letters and digits)",
            notes,
        )
    return token, None, notes


@dataclass
class _Api:
    """POST requests to a REDCap API, with one clear message per failure."""

    url: str
    token: str
    timeout: tuple[float, float]
    session: Any = None

    def __post_init__(self) -> None:
        import requests

        self.session = requests.Session()
        self.shown = redact(self.url)

    def post(self, what: str, data: Mapping[str, str], *, expect: str) -> bytes:
        import requests

        form = {"token": self.token, **data, "returnFormat": "json"}
        try:
            response = self.session.post(
                self.url,
                data=form,
                timeout=self.timeout,
                allow_redirects=False,
                headers={"Accept": "text/csv, application/json"},
            )
        except requests.exceptions.SSLError:
            raise _ApiError(
                f"the TLS certificate of {self.shown} could not be verified (asking for {what}): "
                "check the address; a private certificate authority is set with "
                "REQUESTS_CA_BUNDLE"
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise _ApiError(
                f"the REDCap server at {self.shown} could not be reached within "
                f"{self.timeout[0]:g} s (asking for {what}): check the address and the network"
            ) from None
        except requests.exceptions.Timeout:
            raise _ApiError(
                f"the REDCap server at {self.shown} did not answer within {self.timeout[1]:g} s "
                f"(asking for {what}): try again later, or fetch fewer records per request"
            ) from None
        except requests.exceptions.ConnectionError:
            raise _ApiError(
                f"cannot reach the REDCap server at {self.shown} (asking for {what}): check the "
                "address and that the server is running and reachable from here"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise _ApiError(
                f"the request to {self.shown} failed ({type(exc).__name__}, asking for {what})"
            ) from None
        status = response.status_code
        body = response.content
        message = self._error_text(body)
        if status in (401, 403):
            raise _ApiError(
                f"the API token was refused by {self.shown} (HTTP {status}): check that "
                f"{TOKEN_ENV} (or the file {TOKEN_FILE_ENV} names) holds this project's token "
                "and that your REDCap user has the API export right"
            )
        if 300 <= status < 400:
            target = response.headers.get("Location", "")
            raise _ApiError(
                f"{self.shown} redirects (HTTP {status}) to {redact(target) or 'elsewhere'}: "
                "give that address (usually https://.../api/) as the source"
            )
        if status == 404:
            raise _ApiError(
                f"there is no REDCap API at {self.shown} (HTTP 404): the API address ends in "
                "/api/ (e.g. https://redcap.example.org/api/)"
            )
        if status >= 500:
            raise _ApiError(
                f"the REDCap server at {self.shown} failed (HTTP {status}, asking for {what}): "
                "try again later or ask your REDCap administrator"
                + (f" (it said: {message})" if message else "")
            )
        if status != 200:
            raise _ApiError(
                f"the REDCap API at {self.shown} refused the request for {what} (HTTP {status})"
                + (f": {message}" if message else "")
            )
        kind = response.headers.get("Content-Type", "").lower()
        start = body.lstrip()[:1]
        if "html" in kind or start == b"<":
            raise _ApiError(
                f"{self.shown} answered with a web page, not like a REDCap API (asking for "
                f"{what}): check the address (it ends in /api/)"
            )
        if expect == "csv" and (start in (b"{", b"[") or "json" in kind):
            raise _ApiError(
                f"the REDCap API at {self.shown} did not return CSV for {what}"
                + (f": {message}" if message else "")
            )
        return body

    def _error_text(self, body: bytes) -> str:
        """REDCap's own error message (JSON ``{"error": ...}``), without the token."""
        try:
            doc = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return ""
        text = str(doc.get("error", "")) if isinstance(doc, dict) else ""
        return text.replace(self.token, "[token]")[:300]


def read_redcap_api(
    url: str,
    *,
    mapping: str | os.PathLike | Mapping[str, Any] | RedcapMapping | None = None,
    batch_size: int = 500,
    timeout: tuple[float, float] = (10.0, 300.0),
) -> SourceTables:
    """Read a REDCap project through its API into the contract's tables, as text.

    The token comes from ``$REHABSTATS_REDCAP_TOKEN`` or the file ``$REHABSTATS_REDCAP_TOKEN_FILE``
    names; it is sent in the POST body only and never appears in a message, a log or the
    returned location. Requests: ``content=metadata`` (the data dictionary), ``content=project``
    (the missing-data codes), ``content=record`` with only the record id field (the record
    ids), then the records in batches of ``batch_size`` (``records[0]=...``), each as the flat
    CSV export (raw values, variable names as headers, checkbox columns raw).

    Parameters
    ----------
    url : str
        The API address, e.g. ``https://redcap.example.org/api/``. Plain ``http://`` only to
        this machine (the token would travel unencrypted).
    mapping : path, mapping or RedcapMapping, optional
        Default: ``$REHABSTATS_REDCAP_MAPPING``, else the template's mapping.
    batch_size : int
        Records per request.
    timeout : (float, float)
        Seconds to connect and to wait for each answer.

    Returns
    -------
    SourceTables
        As :func:`read_redcap_export`; a failure of the API (token refused, server
        unreachable or failing, a time-out, an answer that is not CSV) is one ``connection``
        problem with nothing read. The row of a record is its line in the records as fetched
        (header line 1, batches one after the other).
    """
    location = redact(url)
    report = ValidationReport()
    kind = "redcap-api"

    def fatal(rule: str) -> SourceTables:
        read = unreadable(location, rule, kind=kind)
        read.report.warnings.extend(report.warnings)
        return read

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return fatal("a REDCap API source is an address like https://redcap.example.org/api/")
    if parts.username or parts.password or parts.query:
        return fatal(
            "the address must not hold a user, password or query (a token there would be "
            f"logged): give the token in {TOKEN_ENV} or {TOKEN_FILE_ENV}"
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return fatal(
            "the address must use https:// (over http:// the API token would travel "
            "unencrypted); plain http is accepted only for this machine"
        )
    token, why, notes = _token()
    report.warnings.extend(notes)
    if token is None:
        return fatal(why or "no token")
    mapping, problems = _chosen_mapping(mapping, None)
    if mapping is None:
        report.problems.extend(problems)
        return SourceTables({}, {}, report, {}, kind, location)
    api = _Api(url, token, timeout)
    try:
        meta = api.post(
            "the data dictionary", {"content": "metadata", "format": "csv"}, expect="csv"
        )
        dictionary, problems = _parse_dictionary(_csv_rows(meta), "the API's data dictionary")
        if dictionary is None:
            report.problems.extend(problems)
            return SourceTables({}, {}, report, {}, kind, location)
        codes = mapping.missing_data_codes
        if codes is None:
            project = api.post(
                "the project information", {"content": "project", "format": "json"}, expect="json"
            )
            try:
                info = json.loads(project.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                info = {}
            codes = _code_list(info.get("missing_data_codes") if isinstance(info, dict) else None)
        record_form = {
            "content": "record",
            "format": "csv",
            "type": "flat",
            "rawOrLabel": "raw",
            "rawOrLabelHeaders": "raw",
            "exportCheckboxLabel": "false",
            "exportSurveyFields": "false",
            "exportDataAccessGroups": "false",
        }
        listed = api.post(
            "the record ids",
            {**record_form, "fields[0]": dictionary.record_id},
            expect="csv",
        )
        ids_export, problem = _read_csv_bytes(listed, "the record id list")
        if ids_export is None:
            return fatal(f"the API's list of record ids cannot be read: {problem.rule}")
        ids = _distinct(ids_export.columns[ids_export.header[0]])
        chunks: list[bytes] = []
        first_header = b""
        for start in range(0, max(len(ids), 1), batch_size):
            batch = ids[start : start + batch_size]
            form = dict(record_form)  # no record ids (a project without records): the header
            form.update({f"records[{i}]": str(r) for i, r in enumerate(batch)})
            body = api.post(f"records {start + 1}-{start + len(batch)}", form, expect="csv")
            head, _, rest = body.partition(b"\n")
            if not chunks:
                first_header = head
                chunks.append(body if body.endswith(b"\n") or not body else body + b"\n")
            elif head != first_header:
                return fatal(
                    "the project's fields changed while its records were being fetched "
                    "(the batches have different columns): fetch again"
                )
            elif rest:
                chunks.append(rest if rest.endswith(b"\n") else rest + b"\n")
    except _ApiError as exc:
        return fatal(str(exc))
    data, problem = _read_csv_bytes(b"".join(chunks), "the API's records")
    if data is None:
        return fatal(f"the records the API returned cannot be read: {problem.rule}")
    source = _tables_from_export(
        data, dictionary, mapping, codes or (), "the API's records", kind=kind, location=location
    )
    source.report.warnings[:0] = report.warnings
    return source


# --------------------------------------------------------------------------------------------
# Source strings


def is_export_path(path: Path) -> bool:
    """Whether a source path is a REDCap records export rather than a cohort folder.

    - an existing ``.csv`` file not named after a contract table (a cohort folder is a
      folder; ``sessions.csv`` given alone is a folder's table given by mistake, which the
      folder reader names);
    - a folder holding ``redcap_export.csv`` (or REDCap's ``*_DATA_*.csv`` download) and no
      contract table file.

    ``redcap:PATH`` names an export whatever this says (:class:`~rehabstats.data.sources.SourceKind`
    prefix).
    """
    if path.is_file():
        return path.suffix.lower() == ".csv" and path.stem.lower() not in TABLES
    if not path.is_dir():
        return False
    if any((path / f"{t}.{ext}").exists() for t in TABLES for ext in ("csv", "parquet", "xlsx")):
        return False
    return (path / EXPORT_FILE).is_file() or any(path.glob("*_DATA_*.csv"))


# --------------------------------------------------------------------------------------------
# Writing an export (simulated cohorts, demonstrations, tests)


def _as_text(values: pd.Series, kind: str) -> Any:
    """A column as the Arrow text a REDCap raw export holds (null for missing).

    Dates ``YYYY-MM-DD``, whole numbers without decimals, numbers in their shortest exact
    form; a column that is text already (raw tables) is kept as it stands.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pd.api.types.is_datetime64_any_dtype(values):
        return pc.strftime(pa.array(values, from_pandas=True), format="%Y-%m-%d")
    if kind == "integer" and pd.api.types.is_numeric_dtype(values):
        return pa.array(values.astype("Int64"), from_pandas=True).cast(pa.string())
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
        return pa.array(values, from_pandas=True).cast(pa.string())
    # text as it stands (a value given as a number in a raw table as its str); missing kept
    return pa.array(values.astype("str"), pa.string(), from_pandas=True)


def _export_table(tables: Mapping[str, pd.DataFrame]) -> Any:
    """The records export of a cohort as an Arrow table of text (see :func:`redcap_export`)."""
    import pyarrow as pa

    layout = _layout()
    rid = _record_id()
    forms = [t for t in layout["instruments"] if t in tables and len(tables[t])]
    ids = (
        pd.concat([tables[t][rid].astype("str") for t in forms], ignore_index=True)
        if forms
        else pd.Series([], dtype="str")
    )
    _, order_of = pd.factorize(ids)  # participants first, then ids only in child tables
    dictionary = redcap_dictionary()
    header = [rid, "redcap_repeat_instrument", "redcap_repeat_instance"]
    for form in layout["instruments"]:
        names = dictionary.loc[dictionary["Form Name"] == form, "Variable / Field Name"]
        header += [f for f in names if f != rid] + [f"{form}_complete"]
    pieces: dict[str, list[Any]] = {h: [] for h in header}
    keys: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for rank, table in enumerate(forms):
        frame = tables[table].reset_index(drop=True)
        n = len(frame)
        pid = frame[rid].astype("str")
        out: dict[str, Any] = {rid: pa.array(pid, pa.string(), from_pandas=True)}
        for spec in _schema_fields(table):
            column = spec["name"]
            if column != rid and column in frame:
                out[_field_name(table, column)] = _as_text(frame[column], spec["type"])
        if layout["instruments"][table]["repeating"]:
            instance = pid.groupby(pid, sort=False).cumcount().to_numpy() + 1
            out["redcap_repeat_instrument"] = pa.array([table] * n, pa.string())
            out["redcap_repeat_instance"] = pa.array(instance).cast(pa.string())
        else:
            instance = np.zeros(n, dtype=np.int64)
        out[f"{table}_complete"] = pa.array(["2"] * n, pa.string())
        for h in header:
            pieces[h].append(out.get(h, pa.nulls(n, pa.string())))
        keys.append((order_of.get_indexer(pid), np.full(n, rank), instance))
    if not keys:
        return pa.table({h: pa.array([], pa.string()) for h in header})
    record, rank_, instance_ = (np.concatenate(k) for k in zip(*keys, strict=True))
    order = pa.array(np.lexsort((instance_, rank_, record)))
    return pa.table({h: pa.concat_arrays(pieces[h]).take(order) for h in header})


def redcap_export(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The cohort as the flat records export of a project built from the template.

    One record per participant id (participants' order, then ids found only in child tables),
    its ``participants`` row first, then each child table's rows as instances of its repeating
    instrument (1, 2, ... in the table's order), as REDCap exports them: the record id,
    ``redcap_repeat_instrument``, ``redcap_repeat_instance``, each instrument's fields and its
    ``<form>_complete`` status (2, complete). Values are raw text (missing as missing).
    """
    return _text_frame(_export_table(tables))


def _text_frame(table: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {name: _text(table.column(name).combine_chunks()) for name in table.column_names}
    )


def write_redcap_export(
    tables: Any,
    target: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a cohort as a REDCap export folder: ``redcap_export.csv`` + ``redcap_dictionary.csv``.

    Parameters
    ----------
    tables : Cohort or mapping of table name to DataFrame
    target : path
        The folder: created when missing; an existing folder must be empty unless
        ``overwrite``, which replaces only these two files (others are left untouched).

    Returns
    -------
    Path
        ``target``, which :func:`read_redcap_export` (and the cohort loader) reads back.

    Raises
    ------
    OutputError
        The folder is not empty (and not ``overwrite``), is a file, or cannot be created.
    """
    from rehabstats import files

    frames = tables.tables if hasattr(tables, "tables") else dict(tables)
    folder = Path(target)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder: the export was not written")
    files.make_folder(folder)
    names = [EXPORT_FILE, DICTIONARY_FILE]
    files.sweep(folder, names)
    existing = sorted(entry.name for entry in os.scandir(folder))
    if existing and not overwrite:
        raise OutputError(
            f"{folder} is not empty ({', '.join(existing[:5])}): an export is written only "
            "into a new or empty folder. Choose another folder, or replace the export files in "
            "this one (--overwrite; other files are left untouched)."
        )
    export = _export_table(frames)

    def write_export(path: str | os.PathLike) -> None:
        import pyarrow.csv as pacsv

        # Arrow quotes every text value (valid RFC 4180, as many REDCap versions write it)
        pacsv.write_csv(export, str(path), pacsv.WriteOptions(quoting_style="needed"))

    files.write_files(
        [
            (folder / DICTIONARY_FILE, _dictionary_bytes(redcap_dictionary())),
            (folder / EXPORT_FILE, write_export),
        ]
    )
    return folder
