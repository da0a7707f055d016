"""A local REDCap-compatible API for tests: a real HTTP handler (served by pytest-httpserver on
127.0.0.1) answering REDCap's POST requests for ``content=metadata``, ``content=project`` and
``content=record`` (``fields[]`` and ``records[]`` filters, the raw CSV flat export) from a
records export and its data dictionary, and refusing a wrong token with HTTP 403 (or another
status) as REDCap does.
"""

from __future__ import annotations

import csv
import io
import json

from werkzeug import Request, Response

TOKEN = "0123456789ABCDEF0123456789ABCDEF"

API_NAMES = [
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
]


class RedcapProject:
    """A REDCap project as its API serves it (from an export and a data dictionary)."""

    def __init__(
        self, export: str, dictionary: str, *, missing_codes: str = "", refusal: int = 403
    ):
        rows = list(csv.reader(io.StringIO(export)))
        self.header, self.rows = rows[0], rows[1:]
        d = list(csv.reader(io.StringIO(dictionary)))
        self.metadata = [API_NAMES, *d[1:]]  # the API names its columns in snake case
        self.missing_codes = missing_codes
        self.refusal = refusal
        self.requests: list[dict[str, str]] = []

    def csv(self, header: list[str], rows: list[list[str]]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue()

    def __call__(self, request: Request) -> Response:
        form = request.form.to_dict()
        self.requests.append({k: v for k, v in form.items() if k != "token"})
        if request.method != "POST":
            return Response("", 405)
        if form.get("token") != TOKEN:
            return Response(
                json.dumps({"error": "You do not have permissions to use the API"}),
                self.refusal,
                content_type="application/json",
            )
        content = form.get("content")
        if content == "metadata":
            return Response(
                self.csv(self.metadata[0], self.metadata[1:]),
                200,
                content_type="text/csv; charset=utf-8",
            )
        if content == "project":
            info = {
                "project_id": 17,
                "is_longitudinal": 0,
                "missing_data_codes": self.missing_codes,
            }
            return Response(json.dumps(info), 200, content_type="application/json")
        if content != "record":
            return Response(
                json.dumps({"error": 'The value of the parameter "content" is not valid'}),
                400,
                content_type="application/json",
            )
        wanted = {"format": "csv", "type": "flat", "rawOrLabel": "raw", "rawOrLabelHeaders": "raw"}
        if any(form.get(k, v) != v for k, v in wanted.items()):
            return Response(
                json.dumps({"error": "unsupported export options"}),
                400,
                content_type="application/json",
            )
        fields = [v for k, v in form.items() if k.startswith("fields[")]
        records = {v for k, v in form.items() if k.startswith("records[")}
        rows = [r for r in self.rows if not records or r[0] in records]
        header = self.header
        if fields:
            keep = [i for i, h in enumerate(header) if h in fields or h.startswith("redcap_")]
            header = [header[i] for i in keep]
            rows = [[r[i] for i in keep] for r in rows]
        return Response(self.csv(header, rows), 200, content_type="text/csv; charset=utf-8")
