"""rehabstats.report.disclosure and external reports: pseudonyms, small-cell suppression, rendering.

The renders use a 60-participant simulated cohort written to a folder (as a clinic's export
would be); the count check relies on the ``rs-count`` class that report tables give every cell
holding a count of participants or events (``html.table(counts=, count_rows=)``).
"""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from rehabstats import write_cohort
from rehabstats.data.simulate import simulate_tables
from rehabstats.errors import ParameterError
from rehabstats.report.disclosure import (
    PSEUDONYM_KEY_ENV,
    collapse_rare,
    privacy_key,
    pseudonymise,
    redact_ids,
    suppress_counts,
    suppression_mask,
)
from rehabstats.report.render import render_report

KEY = "test-key-0123456789abcdef"  # a test secret (never a default of the library)

# ---- pseudonymise ---------------------------------------------------------------------------


def test_pseudonyms_are_deterministic_keyed_and_hide_the_id():
    ids = pd.Series([f"P{i:06d}" for i in range(1, 201)])
    a = pseudonymise(ids, key=KEY.encode())
    assert a.equals(pseudonymise(ids, key=KEY.encode()))  # same key, same labels
    assert a.str.fullmatch(r"ID-[0-9a-f]{8,}").all()
    assert a.is_unique  # collision-checked
    b = pseudonymise(ids, key=b"another-key-0123456789")
    assert not (a == b).any()  # a different key gives unrelated labels
    digits = ids.str[1:]
    assert not any(d in label for d, label in zip(digits, a, strict=True))
    assert not any(i in label for i in ids for label in a.head(5))
    # a label depends on the id only, not on the other ids
    assert pseudonymise(ids.iloc[[7]], key=KEY.encode()).iloc[0] == a.iloc[7]


def test_pseudonyms_keep_index_and_missing():
    ids = pd.Series(["P1", None, "P1"], index=[10, 11, 12])
    out = pseudonymise(ids, key=KEY.encode())
    assert list(out.index) == [10, 11, 12]
    assert out[10] == out[12] and pd.isna(out[11])


def test_redact_ids_replaces_whole_tokens_only():
    labels = {"P000001": "ID-aaaaaaaa"}
    text = "Diary entries of P000001 after withdrawal (P0000012 untouched); P000001."
    assert redact_ids(text, labels) == (
        "Diary entries of ID-aaaaaaaa after withdrawal (P0000012 untouched); ID-aaaaaaaa."
    )


def test_privacy_key_from_environment_or_file(monkeypatch, tmp_path):
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    with pytest.raises(ParameterError, match=PSEUDONYM_KEY_ENV):
        privacy_key()
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "short")
    with pytest.raises(ParameterError, match="too short"):
        privacy_key()
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY)
    assert privacy_key() == KEY.encode()
    key_file = tmp_path / "key.txt"
    key_file.write_text("file-key-0123456789abcdef\n")
    assert privacy_key(key_file) == b"file-key-0123456789abcdef"


# ---- suppress_counts ------------------------------------------------------------------------


def test_primary_suppression_keeps_zeros_and_large_counts():
    t = pd.DataFrame({"n": [0, 1, 4, 5, 12]})
    out = suppress_counts(t, count_columns=["n"])
    assert out["n"].tolist() == [0, "<5", "<5", 5, 12]
    out = suppress_counts(t, count_columns=["n"], threshold=3)
    assert out["n"].tolist() == [0, "<3", 4, 5, 12]


def test_derived_values_go_with_their_counts():
    t = pd.DataFrame({"n": [20, 20], "count": [3, 10], "percent": [15.0, 50.0],
                      "ci_low": [5.2, 29.9]})  # fmt: skip
    out = suppress_counts(t, count_columns=["n", "count"],
                          derived={"percent": ["count"], "ci_low": ["count", "n"]})  # fmt: skip
    assert out["count"].tolist() == ["<5", 10]
    assert out["percent"].tolist() == ["*", 50.0]
    assert out["ci_low"].tolist() == ["*", 29.9]


def test_secondary_suppression_protects_a_cell_from_the_total():
    # Withdrawals by site with the overall total shown:
    #   Overall 30 = A 3 + B 12 + C 15.
    # Primary suppression alone hides A (3 < 5), but 30 − 12 − 15 = 3 gives it back. The smallest
    # other non-zero cell of the line (B = 12) is withheld too: A + B = 15 is then all a reader
    # can learn. The Overall cell and C stay shown; the % of A and B go with their counts.
    t = pd.DataFrame({"group": ["Overall", "A", "B", "C"], "n": [30, 3, 12, 15],
                      "percent": [100.0, 10.0, 40.0, 50.0]})  # fmt: skip
    primary_only = suppress_counts(t, count_columns=["n"])
    assert primary_only["n"].tolist() == [30, "<5", 12, 15]  # recoverable: 30 − 12 − 15
    out = suppress_counts(t, count_columns=["n"], derived={"percent": ["n"]}, lines=[[]],
                          margin=("group", "Overall"))  # fmt: skip
    assert out["n"].tolist() == [30, "<5", "*", 15]
    assert out["percent"].tolist() == [100.0, "*", "*", 50.0]


def test_secondary_suppression_iterates_across_rows_and_columns():
    # Two outcomes (rows of a site × outcome table) whose sites add up to Overall:
    #   outcome x: Overall 20 = A 2 + B 18   -> A primary; B secondary (only other cell)
    #   outcome y: Overall 25 = A 10 + B 15  -> nothing small
    # and each site's outcomes add up to its size (shown in the header), a second set of lines:
    #   site A: 2 + 10 (x, y)  -> A/x hidden alone -> A/y (10) withheld too
    #   site B: 18 + 15        -> B/x now hidden alone -> B/y (15) withheld too
    # Then outcome y's line has A and B hidden: stable. Overall 20 and 25 stay.
    t = pd.DataFrame({"outcome": ["x", "x", "x", "y", "y", "y"],
                      "group": ["Overall", "A", "B", "Overall", "A", "B"],
                      "n": [20, 2, 18, 25, 10, 15]})  # fmt: skip
    mask = suppression_mask(
        t, count_columns=["n"],
        relations=[((0, "n"), [(1, "n"), (2, "n")]), ((3, "n"), [(4, "n"), (5, "n")]),
                   (None, [(1, "n"), (4, "n")]), (None, [(2, "n"), (5, "n")])],
    )  # fmt: skip
    assert mask["n"].tolist() == ["", "primary", "secondary", "", "secondary", "secondary"]


def test_complement_and_small_denominator():
    # 57 of 60 responded: the 3 non-responders are a small cell -> the count is withheld.
    # a group of 3 (n < 5): its n is suppressed, and so is every count of the row, even 0.
    t = pd.DataFrame({"n": [60, 3, 40], "count": [57, 0, 20]})
    out = suppress_counts(t, count_columns=["n", "count"], denominators={"count": "n"})
    assert out["n"].tolist() == [60, "<5", 40]
    assert out["count"].tolist() == ["*", "*", 20]


def test_rare_free_text_is_collapsed():
    r = pd.DataFrame({"group": ["Overall", "Overall", "Overall", "A", "A", "B"],
                      "reason": ["pain", "moved to Leeds", "time", "pain", "moved to Leeds", "time"],
                      "when": ["during window"] * 6, "n": [7, 1, 2, 7, 1, 2]})  # fmt: skip
    out = collapse_rare(r, "reason", keys=["group", "when"], total=("group", "Overall"),
                        other="other")  # fmt: skip
    assert "moved to Leeds" not in set(out["reason"])
    assert out.set_index(["group", "reason"])["n"].to_dict() == {
        ("Overall", "pain"): 7,
        ("Overall", "other"): 3,
        ("A", "pain"): 7,
        ("A", "other"): 1,
        ("B", "other"): 2,
    }


# ---- rendered reports -----------------------------------------------------------------------


@functools.cache
def _cohort(folder: str) -> tuple[Path, list[str], str]:
    tables = simulate_tables(60, seed=5)
    path = write_cohort(tables, Path(folder) / "cohort_P000001_export")
    # an interim cut-off, so that participants are still under care (a review list to show)
    interim = tables["participants"]["enrolled_on"].max() - pd.Timedelta(days=30)
    ids = sorted(tables["participants"]["participant_id"].astype("str"))
    return path, ids, interim.date().isoformat()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return _cohort(str(tmp_path_factory.mktemp("privacy")))


@pytest.fixture(scope="module")
def external_renders(cohort, tmp_path_factory, report_kernel):
    folder, _, cutoff = cohort
    out = tmp_path_factory.mktemp("external")
    mp = pytest.MonkeyPatch()
    mp.setenv(PSEUDONYM_KEY_ENV, KEY)
    try:
        return {
            "clinic_audit": render_report("clinic_audit", folder, out=out / "audit.html",
                                          parameters={"audience": "external",
                                                      "data_cutoff": cutoff},
                                          kernel=report_kernel),
            "cohort_report": render_report("cohort_report", folder, out=out / "cohort.html",
                                           parameters={"audience": "external",
                                                       "group": "site"},
                                           kernel=report_kernel),
        }  # fmt: skip
    finally:
        mp.undo()


class _Cells(HTMLParser):
    """Text of every table cell, and whether it has the rs-count class."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[bool, str]] = []
        self._cell: list[str] | None = None
        self._count = False

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._cell = []
            self._count = "rs-count" in (dict(attrs).get("class") or "").split()

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append((self._count, "".join(self._cell).strip()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


# an integer standing alone: not part of a decimal, not a percentage (``12 (30%)`` -> 12)
_INTEGER = re.compile(r"(?<![\d.,])(\d+)(?![\d.%])")
_DATA_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")


@pytest.mark.slow
@pytest.mark.parametrize("report", ["clinic_audit", "cohort_report"])
def test_external_report_has_no_identifier_key_or_small_count(report, external_renders, cohort):
    _, ids, _ = cohort
    result = external_renders[report]
    html = result.html_path.read_text()
    notebook = result.notebook_path.read_text()
    assert "External — pseudonymised, small cells (&lt;5) suppressed" in html
    for text in (_DATA_URI.sub("", html), _DATA_URI.sub("", notebook)):
        assert KEY not in text
        assert not re.findall(r"P\d{6}", text)  # the ids' pattern, and every id one by one
        assert not [i for i in ids if i in text]
        assert "cohort_P000001_export" not in text  # the data path is withheld
    assert re.search(r"ID-[0-9a-f]{8}", html) or report == "cohort_report"
    parser = _Cells()
    parser.feed(html)
    counts = [text for is_count, text in parser.cells if is_count]
    assert len(counts) > 30
    small = [t for t in counts if any(1 <= int(n) <= 4 for n in _INTEGER.findall(t))]
    assert small == [], small
    assert any("&lt;5" in t or "<5" in t for t in counts)  # the cohort has small cells
    nb = nbformat.read(result.notebook_path, as_version=4)
    assert nb.metadata["papermill"]["parameters"]["data"] == "withheld (external report)"
    assert result.provenance["audience"] == "external"


class _Notes(HTMLParser):
    """Text of every item of the notes boxes (data notes, section notes, model notes)."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[str] = []
        self._depth = 0  # inside a div.rs-notes: the depth of open divs
        self._item: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "div" and (self._depth or "rs-notes" in (dict(attrs).get("class") or "")):
            self._depth += 1
        if tag == "li" and self._depth:
            self._item = []

    def handle_endtag(self, tag):
        if tag == "div" and self._depth:
            self._depth -= 1
        if tag == "li" and self._item is not None:
            self.items.append("".join(self._item).strip())
            self._item = None

    def handle_data(self, data):
        if self._item is not None:
            self._item.append(data)


@pytest.mark.slow
@pytest.mark.parametrize("report", ["clinic_audit", "cohort_report"])
def test_external_report_notes_show_no_small_count(report, external_renders):
    html = external_renders[report].html_path.read_text()
    parser = _Notes()
    parser.feed(html)
    assert parser.items  # the cohort has data notes (visa_a items, late enrolment ...)
    # a whole number standing alone (not in a date such as 2025-05-02, a decimal or an id)
    alone = re.compile(r"(?<![\w.,:/-])\d+(?![\w:/-]|[.,]\d)")
    small = [t for t in parser.items if any(1 <= int(n) <= 4 for n in alone.findall(t))]
    assert small == [], small
    if report == "clinic_audit":  # 3 participants enrolled after the interim cut-off
        late = [t for t in parser.items if "enrolled after the data cut-off" in t]
        assert late and all(t.startswith("<5 participants") for t in late), late


def test_external_render_without_key_fails_before_a_kernel_starts(cohort, tmp_path, monkeypatch):
    folder, _, _ = cohort
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)

    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr("papermill.execute_notebook", no_kernel)
    with pytest.raises(ParameterError, match=f"{PSEUDONYM_KEY_ENV}.*pseudonym_key_file"):
        render_report("clinic_audit", folder, out=tmp_path / "x.html",
                      parameters={"audience": "external"})  # fmt: skip
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow
def test_internal_report_shows_identifiers(cohort, tmp_path, monkeypatch, report_kernel):
    folder, ids, cutoff = cohort
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY)  # a key in the environment changes nothing
    result = render_report(
        "clinic_audit", folder, out=tmp_path / "internal.html",
        parameters={"data_cutoff": cutoff}, kernel=report_kernel,
    )  # fmt: skip
    html = result.html_path.read_text()
    assert "Internal — contains identifiers, do not share" in html
    shown = set(re.findall(r"P\d{6}", _DATA_URI.sub("", html)))
    assert shown and shown <= set(ids)  # the review list names participants
    assert not re.search(r"ID-[0-9a-f]{8}", html)
    assert KEY not in html


# ---- data notes and captions in external reports -------------------------------------------


@pytest.fixture(scope="module")
def analyses():
    """The same small demo cohort analysed for the team and for readers outside it."""
    from rehabstats.report import sections

    mp = pytest.MonkeyPatch()
    mp.setenv(PSEUDONYM_KEY_ENV, KEY)
    try:
        return {audience: sections.prepare("cohort_report", demo_participants=40,
                                           audience=audience)
                for audience in ("internal", "external")}  # fmt: skip
    finally:
        mp.undo()


def test_note_counts_go_through_the_small_cell_rule(analyses):
    from rehabstats.errors import Note

    external, internal = analyses["external"], analyses["internal"]
    note = Note("{n} participants enrolled after {cutoff}; {rows} rows, {none} dropped",
                counts={"n": 4, "rows": 12, "none": 0}, cutoff="2024-06-03")  # fmt: skip
    assert external.disclosure.note_text(note) == (
        "<5 participants enrolled after 2024-06-03; 12 rows, 0 dropped"  # 4 hidden, 12 and 0 not
    )
    assert (
        internal.disclosure.note_text(note)
        == str(note)
        == ("4 participants enrolled after 2024-06-03; 12 rows, 0 dropped")
    )


def test_plain_text_notes_withhold_every_small_whole_number(analyses):
    external = analyses["external"]
    pid = external.cohort.participants["participant_id"].iloc[0]
    label = external.disclosure.participant_label(pd.Series([pid])).iloc[0]
    # a note that is not a Note does not say which numbers are counts: whole numbers from 1 to
    # 4 standing alone are withheld as "*"; dates, decimals, ids and larger numbers stay
    text = f"3 rows of {pid} on 2024-01-03 at 1.5 (2); 12 others, 0 lost, 4%"
    assert external.disclosure.note_text(text) == (
        f"* rows of {label} on 2024-01-03 at 1.5 (*); 12 others, 0 lost, *%"
    )
    assert analyses["internal"].disclosure.note_text(text) == text


def test_section_notes_keep_the_note_and_disclose_its_counts(analyses):
    import dataclasses
    import warnings

    from rehabstats.errors import DataWarning, Note
    from rehabstats.report import sections

    @sections.section
    def noisy(analysis):
        warnings.warn(Note("{n} participants were odd", counts={"n": 3}), DataWarning,
                      stacklevel=1)  # fmt: skip
        return sections.Block("<p>body</p>", name="noisy")

    for audience, shown in (("external", "&lt;5 participants were odd"),
                            ("internal", "3 participants were odd")):  # fmt: skip
        a = dataclasses.replace(analyses[audience])  # its own notes
        html = noisy(a)._repr_html_()
        assert shown in html
        assert isinstance(a.notes[-1], Note)  # kept (not its text): shown per audience
    assert "3 participants" not in noisy(dataclasses.replace(analyses["external"]))._repr_html_()


def test_counts_in_captions_and_model_notes_of_a_small_cohort(analyses):
    import dataclasses

    from rehabstats.report import sections

    a = analyses["external"]
    pid = a.cohort.participants["participant_id"].iloc[:1]
    small = dataclasses.replace(a, cohort=a.cohort.filter(participant_id=pid), load_notes=[])
    # one participant: the pain model cannot be fitted ("1 participants with morning pain
    # ratings"), the trajectories are of 1 participant, the swimmer plot shows 1
    model = sections.pain_model(small)._repr_html_()
    assert "&lt;5 participants with morning pain ratings" in model
    assert "1 participants" not in model
    trajectories = sections.pain_trajectories(small)._repr_html_()
    assert "for &lt;5 participants with diary data" in trajectories
    swimmer = sections.swimmer(small)._repr_html_()
    assert "&lt;5 participants by site" in swimmer and "1 participants" not in swimmer


def test_visa_plot_shows_the_n_of_the_table(analyses, monkeypatch):
    from rehabstats.report import plots, sections

    seen = {}
    draw = plots.visa_change

    def spy(*args, **kwargs):
        seen.update(kwargs.get("counts") or {})
        return draw(*args, **kwargs)

    monkeypatch.setattr(plots, "visa_change", spy)
    a = analyses["external"]
    block = sections.visa_a(a)
    summary = block.frames["summary"]
    change = summary[summary["outcome"] == "visa_a_change_12"].set_index("group")["n"]
    assert seen and all(seen[g] == change[g] for g in seen)  # suppressed as in the table
    assert set(a.groups) <= set(seen)


def test_ids_holding_any_character_are_redacted():
    labels = {"<b>A & B</b> 1": "ID-aaaaaaaa", "P1": "ID-bbbbbbbb"}
    text = "rows of <b>A & B</b> 1 and P1; not X<b>A & B</b> 1"
    assert redact_ids(text, labels) == "rows of ID-aaaaaaaa and ID-bbbbbbbb; not X<b>A & B</b> 1"
