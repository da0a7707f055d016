"""Privacy for reports that leave the team: pseudonymous labels and small-cell suppression.

A report rendered for ``audience: external`` never shows a participant identifier and never shows
a count from 1 to ``threshold − 1`` (default 5), nor a number from which such a count can be
worked out. Internal reports (the default) are unchanged: clinicians need identifiers to act on
the review list.

Pseudonyms
----------
``ID-`` followed by the first 8 hex digits of HMAC-SHA256(key, participant id) (more digits only
when 8 would make two participants of the data share a label). The key is a secret held by the
data manager, read from the environment variable :data:`PSEUDONYM_KEY_ENV` or from a key file;
there is no default key. The same key gives the same labels in every report (so an external
reader can follow a participant from one monthly report to the next and the clinic can look a
label up); without the key the labels cannot be reversed. The key is never written into a
report, its notebook or its provenance.

Suppression rules (:func:`suppression_mask`, :func:`suppress_counts`)
---------------------------------------------------------------------
1. **Primary**: a count from 1 to ``threshold − 1`` is shown as ``<5`` (``<threshold``).
2. **True zeros are shown**: 0 stays 0 (the statistical convention; a zero says nothing about an
   individual, and suppressing zeros would make the ``<5`` cells easier to bound). A zero in a
   group that is itself suppressed is suppressed with it (rule 4).
3. **Complements**: a count whose complement in its denominator (``n − count``) is from 1 to
   ``threshold − 1`` is withheld (``*``): "57 of 60" tells who the 3 are not.
4. **Small denominators**: when a row's denominator (group size, n with a value, number at
   risk) is suppressed, every count of that row is withheld too.
5. **Derived values** (percentages, means of counts, rates, confidence limits) are withheld
   (``*``) whenever a count they derive from is suppressed.
6. **Secondary suppression**: in every set of cells that add up to a shown total (a row or column
   with a total, the groups and their ``Overall``, the splits of a flow diagram), a single
   withheld cell could be recovered by subtraction; the smallest other non-zero cell of that set
   is then withheld too (``*``), or the total itself when there is none. Repeated until nothing
   changes, so that a secondary cell cannot be recovered through another total either.
7. Withheld cells other than primary ones show ``*`` (withheld, any value), so the marker does
   not tell a reader that the cell is at least the threshold.

Computation and presentation stay apart: :func:`suppression_mask` returns which cells are
withheld and why; :func:`suppress_counts` turns it into a display table (markers as strings,
shown values unchanged), which :mod:`rehabstats.report.format`'s ``fmt_*`` functions pass
through.

One report, one set of rules
----------------------------
:class:`Disclosure` holds a report's audience, threshold and key, and applies the rules above
to each kind of table a report shows (group summaries, the flow, Table 1, Kaplan–Meier and
relapse tables, the audit ...), to single counts in text, to participant ids and to data
notes. The analysis behind a report hands its tables out through it, so the privacy decisions
are made here once and the report sections only lay out what they are given.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rehabstats.constants import OVERALL, PATH_PARAMETERS
from rehabstats.errors import Note, ParameterError
from rehabstats.metrics.stages import KM_SUMMARY_ESTIMATES

__all__ = [
    "DEFAULT_THRESHOLD",
    "WITHHELD",
    "Disclosure",
    "MIN_KEY_LENGTH",
    "PSEUDONYM_KEY_ENV",
    "SECONDARY",
    "collapse_rare",
    "Cell",
    "Relation",
    "pseudonymise",
    "primary_marker",
    "privacy_key",
    "redact_ids",
    "relations_from_lines",
    "suppress_counts",
    "suppression_mask",
]

PSEUDONYM_KEY_ENV = "REHABSTATS_PSEUDONYM_KEY"
"""Environment variable holding the pseudonym key (a secret, at least 16 characters)."""

MIN_KEY_LENGTH = 16
DEFAULT_THRESHOLD = 5
SECONDARY = "*"
"""Marker of a withheld cell that is not a primary small count (secondary, derived)."""

_KEY_HELP = (
    f"Set the environment variable {PSEUDONYM_KEY_ENV} to a secret of at least "
    f'{MIN_KEY_LENGTH} characters (e.g. the output of: python -c "import secrets; '
    'print(secrets.token_hex(32))"), kept by the data manager and the same for every report '
    "that should share labels, or give the report parameter pseudonym_key_file (a file "
    "holding the key, readable only by you). The key is never written into the report."
)


# ---- pseudonyms ----------------------------------------------------------------------------


def privacy_key(key_file: str | os.PathLike | None = None) -> bytes:
    """The pseudonym key: from ``key_file`` when given, else from :data:`PSEUDONYM_KEY_ENV`.

    Raises
    ------
    ParameterError
        When there is no key, or it is shorter than :data:`MIN_KEY_LENGTH` characters, saying
        how to set one. There is no default key.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ParameterError(
                f"pseudonym_key_file {path} cannot be read ({exc.strerror}). {_KEY_HELP}"
            ) from None
        where = f"pseudonym_key_file {path}"
    else:
        text = os.environ.get(PSEUDONYM_KEY_ENV, "").strip()
        where = f"environment variable {PSEUDONYM_KEY_ENV}"
        if not text:
            raise ParameterError(
                "an external report needs a pseudonym key to replace participant ids, and "
                f"none is set. {_KEY_HELP}"
            )
    if len(text) < MIN_KEY_LENGTH:
        raise ParameterError(
            f"the pseudonym key in the {where} is too short ({len(text)} characters; at least "
            f"{MIN_KEY_LENGTH} are needed so that labels cannot be reversed by guessing). "
            + _KEY_HELP
        )
    return text.encode("utf-8")


def pseudonymise(
    ids: pd.Series | Sequence[Hashable], *, key: bytes, digits: int = 8, prefix: str = "ID-"
) -> pd.Series:
    """Pseudonymous labels ``ID-3f9a1c2b`` of participant ids (keyed hash, HMAC-SHA256).

    Parameters
    ----------
    ids : Series or sequence
        Participant ids (compared as text; missing ids stay missing).
    key : bytes
        The secret key (:func:`privacy_key`); required, no default.
    digits : int
        Hex digits of the label (at least 8). Lengthened, for every label, when two different
        ids of ``ids`` would otherwise share one (collision-checked).

    Returns
    -------
    Series
        Labels (str), index and order of ``ids``; the same id always gets the same label for a
        key, different keys give unrelated labels.
    """
    if not key:
        raise ParameterError(f"pseudonymise needs a key. {_KEY_HELP}")
    if digits < 8:
        raise ValueError("digits must be at least 8")
    series = ids if isinstance(ids, pd.Series) else pd.Series(list(ids))
    present = series.notna()
    text = series[present].astype("str")
    unique = pd.unique(text.to_numpy())
    # one HMAC per distinct id (hashing has no array form); everything else is vectorised
    digests = np.array([hmac.new(key, u.encode("utf-8"), hashlib.sha256).hexdigest()
                        for u in unique], dtype=object)  # fmt: skip
    width = digits
    while width < 64:
        short = pd.Series(digests, dtype="str").str[:width]
        if not short.duplicated().any():
            break
        width += 2
    labels = pd.Series(prefix + short.to_numpy(), index=unique, dtype="str")
    out = pd.Series(pd.NA, index=series.index, dtype="str")
    out[present] = labels.reindex(text.to_numpy()).to_numpy()
    return out


_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")


def redact_ids(text: str, labels: Mapping[str, str]) -> str:
    """``text`` with every identifier of ``labels`` (id → label) replaced by its label.

    Identifiers are matched as whole tokens (letters, digits, ``_ . -``), so an id inside a
    longer word is left alone; used on data notes and warnings shown in external reports. An
    id holding other characters (a space, ``<``, ``&`` ...: ids are free text) is matched as it
    is, where no letter or digit touches it.
    """
    if not labels:
        return text

    def swap(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in labels:
            return labels[token]
        stripped = token.strip(".-_")  # "P000123." at the end of a sentence
        return token.replace(stripped, labels[stripped]) if stripped in labels else token

    other = sorted((i for i in labels if i and not _TOKEN.fullmatch(i)), key=len, reverse=True)
    if other:  # first: such an id can hold a token that is another id
        pattern = "|".join(re.escape(i) for i in other)
        text = re.sub(rf"(?<![A-Za-z0-9_])(?:{pattern})(?![A-Za-z0-9_])",
                      lambda m: labels[m.group(0)], text)  # fmt: skip
    return _TOKEN.sub(swap, text)


# ---- small-cell suppression ----------------------------------------------------------------


def primary_marker(threshold: int = DEFAULT_THRESHOLD) -> str:
    """``<5`` for the default threshold."""
    return f"<{threshold}"


Cell = tuple[Hashable, str]
Relation = tuple[Cell | None, list[Cell]]
"""(the total's cell, or None when the total is shown elsewhere; the cells adding up to it).
A cell is (index label, count column)."""


def relations_from_lines(
    table: pd.DataFrame,
    count_columns: Sequence[str],
    lines: Iterable[Sequence[str]],
    *,
    margin: tuple[str, object] | None = None,
) -> list[Relation]:
    """Additive relations of a tidy table: rows sharing the ``line`` columns add up.

    Each line is a list of columns; the rows with the same values of those columns are one set
    of cells (per count column) adding up to a total. When ``margin = (column, value)`` is
    given, the row of that set holding ``value`` in ``column`` is the total (e.g. ``("group",
    "all")``: the groups add up to the whole cohort's row); otherwise the total is shown elsewhere
    (e.g. the group size in a column header).
    """
    out: list[Relation] = []
    for keys in lines:
        keys = list(keys)
        grouped = table.groupby(keys, sort=False, dropna=False).groups if keys else {
            (): table.index}  # fmt: skip
        for _, index in grouped.items():
            labels = list(index)
            total = None
            if margin is not None:
                col, value = margin
                is_total = table.loc[labels, col].astype("str") == str(value)
                if is_total.any():
                    total = labels[int(np.flatnonzero(is_total.to_numpy())[0])]
                    labels = [lab for lab in labels if lab != total]
            if len(labels) + (total is not None) < 2:
                continue
            out.extend(
                (None if total is None else (total, c), [(lab, c) for lab in labels])
                for c in count_columns
            )
    return out


def suppression_mask(
    table: pd.DataFrame,
    *,
    count_columns: Sequence[str],
    threshold: int = DEFAULT_THRESHOLD,
    relations: Iterable[Relation] = (),
    denominators: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Which count cells to withhold, and why (the computation behind :func:`suppress_counts`).

    Parameters
    ----------
    table : DataFrame
        Numeric table, unique index.
    count_columns : sequence of str
        Columns holding counts of participants (or events).
    threshold : int
        Counts from 1 to ``threshold − 1`` are suppressed (at least 2).
    relations : iterable of Relation
        Sets of cells adding up to a shown total (:func:`relations_from_lines`), for secondary
        suppression.
    denominators : mapping, optional
        ``{count column: denominator column}`` (both count columns): complements (rule 3) and
        small denominators (rule 4).

    Returns
    -------
    DataFrame
        Index of ``table``, the count columns, values ``""`` (shown), ``"primary"``,
        ``"complement"``, ``"denominator"`` or ``"secondary"``.
    """
    if int(threshold) < 2:
        raise ValueError("threshold must be at least 2 (counts 1 to threshold − 1 are hidden)")
    if not table.index.is_unique:
        raise ValueError("suppression needs a table with a unique index")
    counts = table[list(count_columns)].apply(pd.to_numeric, errors="coerce")
    small = (counts >= 1) & (counts < threshold)
    status = pd.DataFrame(np.where(small, "primary", ""), index=table.index,
                          columns=list(count_columns), dtype=object)  # fmt: skip
    for col, denom in (denominators or {}).items():
        rest = counts[denom] - counts[col]
        comp = (rest >= 1) & (rest < threshold) & (status[col] == "")
        status.loc[comp, col] = "complement"
    relations = list(relations)
    for _ in range(100):  # converges in a few rounds; the bound only guards against a bug
        changed = False
        for col, denom in (denominators or {}).items():
            hit = (status[denom] != "") & (status[col] == "") & counts[col].notna()
            if hit.any():
                status.loc[hit, col] = "denominator"
                changed = True
        for total, parts in relations:
            hidden = [cell for cell in parts if status.at[cell] != ""]
            total_hidden = total is not None and status.at[total] != ""
            if len(hidden) + total_hidden != 1:
                continue
            shown = [(counts.at[cell], i, cell) for i, cell in enumerate(parts)
                     if status.at[cell] == "" and counts.at[cell] > 0]  # fmt: skip
            if shown:
                status.at[min(shown)[2]] = "secondary"  # the smallest, first on ties
                changed = True
            elif total is not None and not total_hidden:
                status.at[total] = "secondary"
                changed = True
        if not changed:
            break
    return status


def suppress_counts(
    table: pd.DataFrame,
    *,
    count_columns: Sequence[str],
    derived: Mapping[str, Sequence[str]] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    lines: Iterable[Sequence[str]] = (),
    margin: tuple[str, object] | None = None,
    relations: Iterable[Relation] = (),
    denominators: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """A numeric table as it may be shown outside the team: small counts suppressed.

    Parameters
    ----------
    table : DataFrame
        Numeric table (counts, and values derived from them).
    count_columns : sequence of str
        Columns holding counts.
    derived : mapping, optional
        ``{column: [count columns it is derived from]}``: percentages, rates, means, confidence
        limits, withheld when any of their counts in the row is.
    threshold : int
        Counts 1 to ``threshold − 1`` are shown as ``<threshold``.
    lines, margin
        Sets of rows adding up to a total (:func:`relations_from_lines`) for secondary
        suppression; ``relations`` adds explicit ones.
    denominators : mapping, optional
        ``{count column: denominator column}`` (see :func:`suppression_mask`).

    Returns
    -------
    DataFrame
        Same index and columns; suppressed count cells hold ``"<5"`` (primary) or ``"*"``
        (other withheld), withheld derived cells ``"*"``; the other cells keep their values
        (object dtype in the affected columns). ``attrs["suppressed_cells"]`` counts the
        withheld count cells, ``attrs["threshold"]`` is the threshold.

    Notes
    -----
    The rules are listed in the module docstring (:mod:`rehabstats.report.disclosure`).
    """
    table = table.copy()
    derived = dict(derived or {})
    original_index = table.index
    if not table.index.is_unique:
        table = table.reset_index(drop=True)
    all_relations = relations_from_lines(table, count_columns, lines, margin=margin)
    all_relations += list(relations)
    mask = suppression_mask(table, count_columns=count_columns, threshold=threshold,
                            relations=all_relations, denominators=denominators)  # fmt: skip
    out = table.copy()
    marker = primary_marker(threshold)
    for col in count_columns:
        hidden = mask[col] != ""
        if hidden.any():
            out[col] = out[col].astype(object)
            out.loc[hidden, col] = np.where(mask.loc[hidden, col] == "primary", marker, SECONDARY)
    for col, sources in derived.items():
        if col not in out:
            continue
        hidden = (mask[[s for s in sources if s in mask]] != "").any(axis=1)
        if hidden.any():
            out[col] = out[col].astype(object)
            out.loc[hidden, col] = SECONDARY
    out.index = original_index
    out.attrs = dict(table.attrs)
    out.attrs["suppressed_cells"] = int((mask != "").to_numpy().sum())
    out.attrs["threshold"] = int(threshold)
    return out


def collapse_rare(
    frame: pd.DataFrame,
    column: str,
    *,
    count: str = "n",
    keys: Sequence[str] = (),
    total: tuple[str, object] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    other: str = "other reasons",
) -> pd.DataFrame:
    """Categories of ``column`` (e.g. free-text withdrawal reasons) seen fewer than ``threshold``
    times merged into one ``other`` category, so that a rare (possibly identifying) text is not
    shown at all.

    Rarity is judged on the rows selected by ``total = (column, value)`` (e.g. the Overall
    group) or on all rows; counts are summed over ``keys`` + ``column``.
    """
    if frame.empty:
        return frame
    basis = frame if total is None else frame[frame[total[0]].astype("str") == str(total[1])]
    seen = basis.groupby(column, sort=False)[count].sum()
    rare = set(seen.index[seen < threshold])
    if not rare:
        return frame
    out = frame.assign(**{column: frame[column].where(~frame[column].isin(rare), other)})
    keys = [k for k in keys if k != column]
    return out.groupby([*keys, column], sort=False, as_index=False)[count].sum()[frame.columns]


# ---- one report's rules --------------------------------------------------------------------

WITHHELD = "withheld"
"""The stage-occupancy state that stands for the withheld states of a week."""

_PLAIN_NUMBER = re.compile(r"(?<![\w.,:/\-])\d+(?![\w:/\-]|[.,]\d)")
"""A whole number standing alone in a note's text: not part of a decimal, a date, a time, a
range or an identifier (what might be a count)."""

_WITHHELD_PATH = "withheld (external report)"

_SUMMARY_STATS = ("mean", "sd", "median", "q1", "q3", "proportion", "ci_low", "ci_high")
_KM_DERIVED = KM_SUMMARY_ESTIMATES
_AUDIT_COUNTED = ("responders", "checkpoint_fidelity", "rts_readiness")
"""Audit metrics that are proportions of participants (their numerator is a count)."""


def _is_marker(value: object) -> bool:
    return isinstance(value, str)


class Disclosure:
    """What one report may show its audience: every rule of this module, applied in one place.

    ``internal`` (the team): every table, count, id and text as it is. ``external`` (the
    report leaves the team): counts through the suppression rules with this report's
    ``threshold``, participant ids as keyed pseudonyms, data notes with their counts withheld
    and ids replaced, enrolment dates by month, paths withheld. The analysis behind a report
    (:class:`rehabstats.report.analysis.Analysis`) offers its tables through these methods
    (its ``*_shown`` results); sections never decide what to withhold.

    Parameters
    ----------
    audience : {"internal", "external"}
    threshold : int
        Counts 1 to ``threshold − 1`` are withheld (external only).
    key : bytes, optional
        The pseudonym key (:func:`privacy_key`); an external report needs it for ids.
    ids : Series, optional
        Every participant id of the cohort (what :meth:`redact` looks for in texts).
    """

    def __init__(
        self,
        audience: str = "internal",
        *,
        threshold: int = DEFAULT_THRESHOLD,
        key: bytes | None = None,
        ids: pd.Series | None = None,
    ):
        self.audience = audience
        self.threshold = threshold
        self.key = key
        self._ids = pd.Series(dtype="str") if ids is None else ids.astype("str")
        self._labels: dict[str, str] | None = None

    @property
    def external(self) -> bool:
        """The report leaves the team: pseudonyms and small-cell suppression."""
        return self.audience == "external"

    # -- single values and texts ---------------------------------------------------------------

    def count(self, n: object) -> str:
        """A single count as shown in text (``<5`` when small, in an external report)."""
        if isinstance(n, str):
            return n
        if pd.isna(n):  # type: ignore[call-overload]
            return "–"
        n = int(n)  # type: ignore[call-overload]
        if self.external and 1 <= n < self.threshold:
            return primary_marker(self.threshold)
        return str(n)

    def participant_label(self, ids: pd.Series) -> pd.Series:
        """Participant ids as shown: the ids (internal) or keyed pseudonyms (external)."""
        if not self.external:
            return ids.astype("str")
        if self.key is None:
            raise ParameterError("an external report needs the pseudonym key")
        return pseudonymise(ids, key=self.key)

    def _id_labels(self) -> dict[str, str]:
        if self._labels is None:
            labels = self.participant_label(self._ids)
            self._labels = dict(zip(self._ids, labels, strict=True))
        return self._labels

    def redact(self, text: str) -> str:
        """Text (data notes, warnings) with participant ids replaced by their labels."""
        if not self.external:
            return text
        return redact_ids(text, self._id_labels())

    def redact_html(self, text: str) -> str:
        """HTML with participant ids (as escaped in it) replaced by their labels."""
        if not self.external:
            return text
        escaped = {html.escape(k): html.escape(v) for k, v in self._id_labels().items()}
        return redact_ids(text, escaped)

    def note_text(self, note: str) -> str:
        """A data note as this audience may read it.

        ``internal``: the note. ``external``: every count of a :class:`~rehabstats.errors.Note`
        as :meth:`count` shows it (``<5`` for 1 to threshold − 1); a plain-text note (from a
        statistics library, say) does not say which of its numbers are counts, so every whole
        number in it from 1 to threshold − 1 standing alone (not in a decimal, date or
        identifier) is withheld as ``*``. Participant ids are replaced by their labels.
        """
        if not self.external:
            return str(note)
        if isinstance(note, Note):
            text = note.with_counts(self.count)
        else:
            text = _PLAIN_NUMBER.sub(
                lambda m: SECONDARY if 1 <= int(m.group(0)) < self.threshold else m.group(0),
                str(note),
            )
        return self.redact(text)

    def parameters(self, parameters: Mapping[str, object]) -> dict[str, object]:
        """Report parameters as shown: paths withheld from an external report (a folder or
        file name can hold names or ids; the data are identified by their fingerprint)."""
        if not self.external:
            return dict(parameters)
        return {k: (_WITHHELD_PATH if k in PATH_PARAMETERS and v is not None else v)
                for k, v in parameters.items()}  # fmt: skip

    def enrolment(self, enrolled: pd.Series) -> str:
        """The enrolment period: first to last date (by month in an external report)."""
        if self.external:
            return f"{enrolled.min():%Y-%m} to {enrolled.max():%Y-%m}"
        return f"{enrolled.min().date()} to {enrolled.max().date()}"

    def source(self, source: str | None, *, given: bool, kind: str | None) -> str:
        """Where the cohort came from: the kind of source and its (redacted) location; an
        external report withholds the location of a source given as the ``data`` parameter."""
        from rehabstats.data.sources import describe_kind

        kind = kind or "folder"
        if self.external and given:
            withheld = "path" if kind == "folder" else "location"
            return (
                f"{describe_kind(kind)} ({withheld} withheld; identified by the data fingerprint)"
            )
        if kind == "folder" or not source:
            return source or "in-memory cohort"
        return f"{describe_kind(kind)}: {source}"

    # -- tables --------------------------------------------------------------------------------

    def table(
        self,
        frame: pd.DataFrame,
        *,
        counts: Sequence[str] = (),
        derived: Mapping[str, Sequence[str]] | None = None,
        lines: Sequence[Sequence[str]] = (),
        margin: tuple[str, object] | None = None,
        relations: Sequence[Relation] = (),
        denominators: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """A numeric table as it may be shown: unchanged (internal), or
        :func:`suppress_counts` with this report's threshold (external)."""
        if not self.external:
            return frame
        return suppress_counts(
            frame, count_columns=[c for c in counts if c in frame], derived=derived,
            threshold=self.threshold, lines=lines, margin=margin, relations=relations,
            denominators=denominators,
        )  # fmt: skip

    def group_summary(self, summary: pd.DataFrame) -> pd.DataFrame:
        """A :func:`rehabstats.stats.summaries.group_summary` table: n and count are counts;
        groups add up to the whole cohort per outcome; a count whose complement (n − count)
        is small is withheld; means, SDs, quantiles, proportions and CIs go with their counts.
        """
        return self.table(
            summary, counts=["n", "count"], derived={c: ["n", "count"] for c in _SUMMARY_STATS},
            lines=[["outcome"]], margin=("group", OVERALL), denominators={"count": "n"},
        )  # fmt: skip

    def km_summary(self, summary: pd.DataFrame) -> pd.DataFrame:
        """A ``time_to_stage_summary`` table (n and events are counts)."""
        return self.table(summary, counts=["n", "events"],
                          derived={c: ["n", "events"] for c in _KM_DERIVED if c in summary},
                          lines=[["stage"]], denominators={"events": "n"})  # fmt: skip

    def relapse_rates(self, rates: pd.DataFrame) -> pd.DataFrame:
        """``relapse_rates`` rows: at risk and relapses are counts; person-time, rates and
        limits go with them; the groups add up to the whole cohort's row."""
        return self.table(
            rates, counts=["n_at_risk", "relapses"],
            derived={"person_weeks": ["n_at_risk"],
                     **{c: ["n_at_risk", "relapses"]
                        for c in ("rate_per_1000_pw", "ci_low", "ci_high")}},
            lines=[[]], margin=("group", OVERALL), denominators={"relapses": "n_at_risk"},
        )  # fmt: skip

    def rate_ratio(self, ratio: pd.DataFrame) -> pd.DataFrame:
        """``relapse_rate_ratio``: the four counts, and everything else derived from them."""
        counts = ["n_stopped_early", "relapses_stopped_early", "n_completers",
                  "relapses_completers"]  # fmt: skip
        return self.table(ratio, counts=counts,
                          derived={c: counts for c in ratio.columns if c not in counts},
                          denominators={"relapses_stopped_early": "n_stopped_early",
                                        "relapses_completers": "n_completers"})  # fmt: skip

    def relapse_acwr(self, table: pd.DataFrame) -> pd.DataFrame:
        """Relapse after ACWR spikes (``relapse_acwr`` with rates): the exposed and unexposed
        relapses are counts, adding up to the group's relapses (shown with the relapse rates)
        and, over the groups, to the whole cohort's row; person-time, rates, the ratio and its
        limits go with them."""
        counts = ["exposed_relapses", "unexposed_relapses"]
        derived = {
            "exposed_rate_per_1000_pw": ["exposed_relapses"],
            "unexposed_rate_per_1000_pw": ["unexposed_relapses"],
            **dict.fromkeys(("rate_ratio", "ci_low", "ci_high", "p_value"), counts),
        }
        table = table.reset_index(drop=True)
        relations: list[Relation] = [(None, [(i, c) for c in counts]) for i in table.index]
        return self.table(table, counts=counts, derived=derived, lines=[[]],
                          margin=("group", OVERALL), relations=relations)  # fmt: skip

    def running_volume(self, volume: pd.DataFrame) -> pd.DataFrame:
        """``running_volume`` as drawn: external, the weeks of a group with fewer than
        ``threshold`` runners followed are left out (a median of a few is nearly a person's
        minutes)."""
        if not self.external:
            return volume
        return volume[volume["runners"] >= self.threshold].reset_index(drop=True)

    def acwr_distribution(self, histogram: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """``acwr_histogram`` as drawn, and the groups withheld: external, a group with fewer
        than ``threshold`` runners with a defined ACWR is not drawn (its participant-days are
        a few people's). Shares of participant-days, not counts, are drawn."""
        if not self.external:
            return histogram, []
        small = histogram["runners"] < self.threshold
        groups = sorted(set(histogram.loc[small, "group"].astype("str")))
        return histogram[~small].reset_index(drop=True), groups

    def flow(self, flow: pd.DataFrame) -> pd.DataFrame:
        """:func:`rehabstats.metrics.flow.flow_counts`: the groups add up to the whole cohort
        per step, and each step's splits add up to it (a diagram shows them all)."""
        splits = {
            "enrolled": ["never_started", "started"],
            "started": ["withdrawn_in_window", "in_window", "completed_window"],
            "completed_window": ["not_returned", "returned_to_running"],
        }
        relations: list[Relation] = []
        for _, part in flow.groupby("group", sort=False):
            index = dict(zip(part["step"], part.index, strict=True))
            for total, steps in splits.items():
                relations.append(((index[total], "n"), [(index[s], "n") for s in steps]))
        return self.table(flow, counts=["n"], derived={"percent": ["n"]}, lines=[["step"]],
                          margin=("group", OVERALL), relations=relations)  # fmt: skip

    def withdrawal_reasons(self, reasons: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:func:`rehabstats.metrics.flow.withdrawal_reasons` as it may be shown.

        Returns (counts, shown): the counts with every reason given fewer than ``threshold``
        times merged into one "other reasons" row (external: a rare free-text reason is not
        shown at all), and those counts disclosed (the withdrawals of a flow step by reason add
        up to the flow's count of it).
        """
        if self.external:
            reasons = collapse_rare(
                reasons, "reason", keys=["group", "when"], total=("group", OVERALL),
                threshold=self.threshold,
                other=f"other reasons (each fewer than {self.threshold})",
            )  # fmt: skip
        steps = {"during window", "after window"}
        relations: list[Relation] = [
            (None, [(i, "n") for i in part.index])
            for (_, when), part in reasons.groupby(["group", "when"], sort=False)
            if when in steps and len(part) > 1  # the total is the flow box's count
        ]
        shown = self.table(reasons, counts=["n"], lines=[["reason", "when"]],
                           margin=("group", OVERALL), relations=relations)  # fmt: skip
        return reasons, shown

    def table_one(
        self, summary: pd.DataFrame, smd: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:func:`rehabstats.stats.summaries.table_one` as it may be shown: the levels of a
        variable and its missing count add up to the group size; the missing counts of the
        groups add up to the whole cohort's; the SMD of a variable with a withheld count is
        withheld."""
        relations: list[Relation] = []
        cat = summary[summary["kind"] == "categorical"]
        for _, part in cat.groupby(["variable", "group"], sort=False):
            relations.append(
                (None, [(i, "count") for i in part.index] + [(part.index[0], "missing")])
            )
        first = summary.drop_duplicates(["variable", "group"])
        for _, part in first.groupby("variable", sort=False):
            total = part.index[part["group"] == OVERALL]
            parts = part.index[part["group"] != OVERALL]
            if len(total) and len(parts):
                relations.append(((total[0], "missing"), [(i, "missing") for i in parts]))
        stats = ["mean", "sd", "median", "q1", "q3", "percent"]
        shown = self.table(summary, counts=["n", "count", "missing"],
                           derived={c: ["n", "count"] for c in stats},
                           lines=[["variable", "level"]], margin=("group", OVERALL),
                           relations=relations, denominators={"count": "n"})  # fmt: skip
        if self.external:
            shown.attrs["n"] = {g: self.count(v) for g, v in summary.attrs["n"].items()}
            withheld = shown[["n", "count", "missing"]].map(_is_marker)
            hidden = set(shown.loc[withheld.any(axis=1), "variable"])
            smd = smd.astype({"smd": object})
            smd.loc[smd["variable"].isin(hidden), "smd"] = SECONDARY
        return shown, smd

    def at_risk(self, at_risk: pd.DataFrame) -> pd.DataFrame:
        """Numbers at risk under a survival plot (counts)."""
        return self.table(at_risk, counts=["n"])

    def km_until(self, km: pd.DataFrame, durations: pd.DataFrame) -> dict[str, float] | None:
        """Last day of each group's Kaplan–Meier curve (external; None: every curve whole).

        The first event time with fewer than ``threshold`` at risk; 0 (not drawn) for a group
        smaller than the threshold. ``durations`` has the group of every participant.
        """
        if not self.external:
            return None
        small = km[km["at_risk"] < self.threshold]
        until = small.groupby(small["group"].astype("str"))["time_days"].min().to_dict()
        sizes = durations.groupby(durations["group"].astype("str")).size()
        until.update({str(g): 0.0 for g in sizes.index[sizes < self.threshold]})
        return until

    def occupancy(self, occupancy: pd.DataFrame) -> pd.DataFrame:
        """``stage_occupancy`` as drawn: external, the states of a week with fewer than
        ``threshold`` participants (and the secondary cells that protect them) merged into one
        :data:`WITHHELD` bar segment; weeks with fewer than ``threshold`` observed left out."""
        if not self.external:
            return occupancy
        occ = occupancy.reset_index(drop=True)
        shown = self.table(occ, counts=["n"], derived={"proportion": ["n"]},
                           lines=[["group", "week"]])  # fmt: skip
        withheld = shown["n"].map(_is_marker)
        merged = occ.assign(state=occ["state"].astype("str").where(~withheld, WITHHELD))
        merged = merged.groupby(["group", "week", "state"], sort=False, as_index=False,
                                observed=True)[["n", "proportion"]].sum()  # fmt: skip
        totals = merged.groupby(["group", "week"], observed=True)["n"].transform("sum")
        return merged[totals >= self.threshold].reset_index(drop=True)

    def incidence(
        self, incidence: pd.DataFrame, rates: pd.DataFrame
    ) -> tuple[pd.DataFrame, list[str]]:
        """Cumulative incidence without the groups whose relapse counts are withheld in
        ``rates`` (the disclosed :meth:`relapse_rates`); returns it and those groups."""
        if not self.external:
            return incidence, []
        hidden = rates[rates[["n_at_risk", "relapses"]].map(_is_marker).any(axis=1)]
        groups = sorted(set(hidden["group"].astype("str")))
        return incidence[~incidence["group"].astype("str").isin(groups)], groups

    def comparisons(
        self, comparisons: Mapping[str, pd.DataFrame], summary: pd.DataFrame
    ) -> tuple[dict[str, pd.DataFrame], bool]:
        """Group comparisons, each of one outcome (``{outcome: comparison rows}``), left out
        where a count of that outcome in the disclosed ``summary`` (:meth:`group_summary`) is
        withheld: a risk difference would give the withheld counts away, and so would the
        means of a group smaller than the threshold. Returns them and whether any was left out.
        """
        if not self.external:
            return dict(comparisons), False
        withheld = summary[["n", "count"]].map(_is_marker).any(axis=1)
        hidden = set(summary.loc[withheld, "outcome"]) & set(comparisons)
        shown = {k: v.iloc[0:0] if k in hidden else v for k, v in comparisons.items()}
        return shown, bool(hidden)

    def audit(self, audit: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``audit_summary`` as shown and as plotted.

        n is a count (sites add up to the whole cohort); the numerator of a proportion of
        participants (value · n) is a count too; the estimate, its interval and met/missed go
        with them. Returns (the table with markers; the numeric table with the withheld values
        missing, for the figure).
        """
        if not self.external:
            return audit, audit
        audit = audit.reset_index(drop=True)
        counted = audit["metric"].isin(_AUDIT_COUNTED)
        numerator = (audit["value"] * audit["n"]).round().where(counted)
        shown = self.table(
            audit.assign(numerator=numerator), counts=["n", "numerator"],
            derived={c: ["n", "numerator"] for c in ("value", "ci_low", "ci_high", "met")},
            lines=[["metric"]], margin=("site", OVERALL), denominators={"numerator": "n"},
        ).drop(columns="numerator")  # fmt: skip
        withheld = shown["value"].map(_is_marker)
        plotted = audit.assign(
            n=shown["n"],
            **{c: audit[c].where(~withheld) for c in ("value", "ci_low", "ci_high", "met")},
        )
        return shown, plotted
