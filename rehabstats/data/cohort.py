"""The validated cohort: seven tidy tables, the data cut-off and a content fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TypeVar

import numpy as np
import pandas as pd

from rehabstats.data.schema import DATE_COLUMNS, TABLES, table_spec, validate_tables
from rehabstats.errors import CohortValidationError, DataWarning, Note

__all__ = ["Cohort"]

_T = TypeVar("_T")


ALL_COLUMNS = ("*",)
LATER_ADDITIONS: dict[str, tuple[str, ...]] = {"sessions": ("lowering_s",), "running": ALL_COLUMNS}
"""Contract columns (``ALL_COLUMNS``: the whole table) added after the fingerprint was defined.

:meth:`Cohort.fingerprint` hashes a column listed here only when it holds a value and a table
only when it has rows, so the fingerprints of cohorts that do not use them are unchanged."""


@dataclass(frozen=True)
class Cohort:
    """A validated cohort.

    Build one with :func:`rehabstats.load_cohort` (from files) or :meth:`Cohort.from_tables`
    (from DataFrames); both validate, so every ``Cohort`` satisfies the data contract.

    Attributes
    ----------
    participants, sessions, pain, visa_a, function_tests, events, running : DataFrame
        The tables with contract dtypes (see ``docs/data.md``); extra columns are kept.
    data_cutoff : Timestamp
        The cohort's default cut-off: the latest date found in any table, unless another was
        given when the cohort was built (``load_cohort(data_cutoff=)``, :meth:`with_cutoff`).
        The analysis cut-off is an analysis choice, owned by
        :class:`~rehabstats.config.AnalysisConfig` (``data_cutoff``): when set it wins
        (:func:`rehabstats.time.timeline.analysis_cutoff`).
    source : str or None
        Where the tables came from (a folder path, a database URL without its password,
        ``"simulated"``...), for reports.
    source_kind : str or None
        The kind of source (``folder``, ``postgresql``, ``sqlite``...; see
        :mod:`rehabstats.data.sources`), set by :func:`rehabstats.load_cohort`.
    warnings : tuple of str
        Suspicious but legal data found while validating.
    """

    participants: pd.DataFrame
    sessions: pd.DataFrame
    pain: pd.DataFrame
    visa_a: pd.DataFrame
    function_tests: pd.DataFrame
    events: pd.DataFrame
    running: pd.DataFrame
    data_cutoff: pd.Timestamp
    source: str | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)
    source_kind: str | None = None

    @classmethod
    def from_tables(
        cls,
        tables: Mapping[str, pd.DataFrame],
        *,
        data_cutoff: str | pd.Timestamp | None = None,
        source: str | None = None,
        row_offset: Mapping[str, int] | None = None,
        loaded_on: str | dt.date | pd.Timestamp | None = None,
    ) -> Cohort:
        """Validate tables and build a cohort.

        Parameters
        ----------
        tables : mapping of str to DataFrame
            ``participants`` and ``sessions`` are required; an absent optional table means no
            records.
        data_cutoff : str or Timestamp, optional
            The cohort's default cut-off (ISO ``YYYY-MM-DD``). Default: the latest date in any
            table. ``AnalysisConfig.data_cutoff``, when set, wins.
        source : str, optional
            Description of the source, kept for reports.
        row_offset : mapping of str to int, optional
            See :func:`rehabstats.data.schema.validate_tables`.
        loaded_on : str, date or Timestamp, optional
            The day the data are loaded; a date after it is a validation problem. Default:
            today where it is latest on Earth (see :func:`rehabstats.data.schema.validate_tables`).

        Raises
        ------
        CohortValidationError
            Listing every broken rule (table, row, column, value, rule); nothing is built.
        """
        parsed, report = validate_tables(tables, row_offset=row_offset, loaded_on=loaded_on)
        if not report.ok:
            raise CohortValidationError(report, source=source)
        for message in report.warnings:
            warnings.warn(message, DataWarning, stacklevel=2)
        # participant_id of the child tables as a categorical over the participants' ids: one
        # integer code per row makes every per-participant lookup and grouping cheap
        ids = pd.Index(parsed["participants"]["participant_id"])
        for name in DATE_COLUMNS:
            column = parsed[name]["participant_id"]
            done = isinstance(column.dtype, pd.CategoricalDtype) and column.cat.categories.equals(
                ids
            )
            if not done:
                parsed[name]["participant_id"] = pd.Categorical(column, categories=ids)
        cutoff = _latest_date(parsed) if data_cutoff is None else _as_date(data_cutoff)
        return cls(**parsed, data_cutoff=cutoff, source=source, warnings=tuple(report.warnings))

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The seven tables by name."""
        return {name: getattr(self, name) for name in TABLES}

    @property
    def n_participants(self) -> int:
        return len(self.participants)

    def with_cutoff(self, data_cutoff: str | pd.Timestamp) -> Cohort:
        """The same cohort with another default cut-off (:attr:`data_cutoff`).

        Rows dated after it are kept and not analysed; :meth:`cutoff_notes` counts them. The
        same as analysing with ``AnalysisConfig(data_cutoff=...)``, which wins when both are
        set.
        """
        return replace(self, data_cutoff=_as_date(data_cutoff))

    def cutoff_notes(
        self, cutoff: str | pd.Timestamp | None = None, *, enrolments: bool = True
    ) -> list[Note]:
        """Data notes counting what lies after a data cut-off and is therefore not analysed.

        Parameters
        ----------
        cutoff : str or Timestamp, optional
            The cut-off in force (default: the cohort's own).
        enrolments : bool
            Include the note on participants enrolled after the cut-off.

        Returns
        -------
        list of Note
            In table order: participants enrolled after the cut-off, withdrawals dated after it
            (those participants are followed to the cut-off), then one note per child table
            with rows dated after it (e.g. ``pain: 12 rows dated after the data cut-off
            2024-06-30 are not analysed.``). Empty when nothing lies after the cut-off, as
            with the default cut-off (the latest date).
        """
        at = self.data_cutoff if cutoff is None else _as_date(cutoff)
        return list(
            self.derived(
                ("cutoff_notes", at, enrolments), lambda: self._cutoff_notes(at, enrolments)
            )
        )

    def derived(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """A value derived from the cohort, computed on first use and kept with it.

        For the layers above the data: the participant timeline of a cut-off
        (:func:`rehabstats.time.timeline.participant_timeline`), the relapse times of a
        configuration... are computed once per cohort however many metrics need them. The
        tables are never changed, so a value stays valid; it lives and goes with the cohort
        (a new cohort, e.g. from :meth:`with_cutoff` or :meth:`filter`, starts empty, and a
        pickled cohort leaves it behind).

        Parameters
        ----------
        key : hashable
            What the value depends on besides the cohort, starting with a name (e.g.
            ``("participant_timeline", cutoff)``).
        compute : callable
            Called without arguments when the value is not kept yet. Callers must not change
            the value they get (hand out copies where a caller may).
        """
        kept = self._derived
        if key not in kept:
            kept[key] = compute()
        return kept[key]

    @cached_property
    def _derived(self) -> dict[Hashable, object]:
        return {}

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_derived", None)  # derived values are recomputed, not pickled or copied
        return state

    def _cutoff_notes(self, at: pd.Timestamp, enrolments: bool) -> list[Note]:
        cutoff = at.date().isoformat()
        notes: list[Note] = []
        people = self.participants
        late = people["enrolled_on"] > at
        if enrolments and late.any():
            notes.append(
                Note(
                    "{n} {n:participant|participants} enrolled after the data cut-off {cutoff} "
                    "{n:is|are} not analysed (no follow-up yet).",
                    counts={"n": int(late.sum())},
                    cutoff=cutoff,
                )
            )
        withdrawn_later = ~late & (people["withdrawn_on"] > at)
        if withdrawn_later.any():
            notes.append(
                Note(
                    "participants: withdrawn_on after the data cut-off {cutoff} in {n} {n:row|rows}; "
                    "those withdrawals are not yet counted (the participants are followed to "
                    "the cut-off).",
                    counts={"n": int(withdrawn_later.sum())},
                    cutoff=cutoff,
                )
            )
        for name, column in DATE_COLUMNS.items():
            after = int((self.tables[name][column] > at).sum())
            if after:
                notes.append(
                    Note(
                        "{table}: {rows} {rows:row|rows} dated after the data cut-off {cutoff} "
                        "{rows:is|are} not analysed.",
                        counts={"rows": after},
                        table=name,
                        cutoff=cutoff,
                    )
                )
        return notes

    def filter(
        self,
        *,
        site: str | Iterable[str] | None = None,
        arm: str | Iterable[str] | None = None,
        participant_id: str | Iterable[str] | None = None,
    ) -> Cohort:
        """Participants matching every given criterion, with their rows in every table.

        The data cut-off is kept from the whole cohort, so that subsets of one analysis share
        one analysis date.
        """
        keep = pd.Series(True, index=self.participants.index)
        for column, wanted in (("site", site), ("arm", arm), ("participant_id", participant_id)):
            if wanted is None:
                continue
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            keep &= self.participants[column].isin(values)
        people = self.participants[keep]
        ids = people["participant_id"]
        children = {
            name: self.tables[name][self.tables[name]["participant_id"].isin(ids)]
            for name in DATE_COLUMNS
        }
        return replace(self, participants=people, **children)

    def fingerprint(self) -> str:
        """SHA-256 of the tables' contract columns (values, dtypes, row order).

        Equal for the same data whatever the file format it was read from; extra columns and
        the data cut-off are not part of it. Columns and tables added to the contract later
        (:data:`LATER_ADDITIONS`) enter only when they hold data, so a cohort that does not use
        them keeps the fingerprint it had before they were added.
        """
        digest = hashlib.sha256()
        for name in TABLES:
            table = self.tables[name]
            columns = table_spec(name).columns
            added = LATER_ADDITIONS.get(name, ())
            if added == ALL_COLUMNS and table.empty:
                continue
            columns = [c for c in columns if c not in added or table[c].notna().any()]
            digest.update(f"{name}:{len(table)}:{','.join(columns)}".encode())
            if len(table):
                hashed = pd.util.hash_pandas_object(table[columns], index=False)
                digest.update(np.ascontiguousarray(hashed.to_numpy()).tobytes())
        return digest.hexdigest()

    def summary(self, *, cutoff: str | pd.Timestamp | None = None) -> dict[str, object]:
        """Participants, rows per table and date range, for ``rehabstats validate``.

        ``cutoff``: the analysis cut-off (:func:`rehabstats.time.timeline.analysis_cutoff`;
        default: the cohort's own), reported as ``data_cutoff`` with the notes of what lies
        after it (:meth:`cutoff_notes`).
        """
        at = self.data_cutoff if cutoff is None else _as_date(cutoff)
        first, last = _date_range(self.tables)
        return {
            "participants": self.n_participants,
            "rows": {name: len(t) for name, t in self.tables.items()},
            "first_date": None if pd.isna(first) else first.date().isoformat(),
            "last_date": None if pd.isna(last) else last.date().isoformat(),
            "data_cutoff": at.date().isoformat(),
            "sites": sorted(self.participants["site"].unique().tolist()),
            "arms": sorted(self.participants["arm"].unique().tolist()),
            "warnings": [*self.warnings, *self.cutoff_notes(at)],
        }

    def __repr__(self) -> str:
        rows = ", ".join(f"{name}={len(t)}" for name, t in self.tables.items())
        return f"Cohort({rows}, data_cutoff={self.data_cutoff.date()}, source={self.source!r})"


def _date_columns(tables: Mapping[str, pd.DataFrame]) -> list[pd.Series]:
    return [
        tables[name][f.name]
        for name in TABLES
        for f in table_spec(name).fields
        if f.type == "date" and f.name in tables[name]
    ]


def _date_range(tables: Mapping[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The earliest and latest date in any table (NaT when there is none), column by column:
    no concatenated copy of every date."""
    lows = [c.min() for c in _date_columns(tables)]
    highs = [c.max() for c in _date_columns(tables)]
    known = [d for d in lows if not pd.isna(d)]
    if not known:
        return pd.NaT, pd.NaT
    return pd.Timestamp(min(known)), pd.Timestamp(max(d for d in highs if not pd.isna(d)))


def _latest_date(tables: Mapping[str, pd.DataFrame]) -> pd.Timestamp:
    # validation guarantees at least one participant with an enrolment date
    return _date_range(tables)[1]


def _as_date(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp != stamp.normalize():
        raise ValueError(f"data_cutoff must be a date without a time of day, got {value!r}")
    return stamp
