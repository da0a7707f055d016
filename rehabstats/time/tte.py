"""A small declarative time-to-event layer shared by stage timing and relapse.

In the spirit of CDISC ADaM's ADTTE dataset: an :class:`EventSpec` says *what* counts as the
event (candidate rows from one or more sources, in order of precedence), *from when* time runs
(a per-participant origin) and *what else* ends observation (a competing event); :func:`derive`
turns it into one row per participant at risk with the time and how it ended. Estimators
(Kaplan-Meier, Aalen-Johansen, Poisson rates) then work on that table only.

Conventions (``docs/metrics.md`` §3):

* Times are whole days from enrolment (as :func:`rehabstats.time.timeline.observed_rows` counts
  them); data after ``obs_end`` (day ``follow_up_days``) is never an event: observation ends
  there (censoring).
* The event is the earliest candidate on a day ``>= origin`` (``origin_inclusive=True``, the
  default; e.g. a stage-2 session on the day of enrolment is reached at time 0) or ``> origin``
  (``origin_inclusive=False``; e.g. a relapse must follow the return to running), and on or
  before ``follow_up_days``.
* Several candidates on the earliest day: the source listed first in ``EventSpec.sources``
  names the event (``event_source``).
* A competing event on day ``c`` ends observation at ``c`` unless the event happens on or
  before ``c`` (an event on the competing event's day wins: data on ``obs_end`` is observed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rehabstats.time.keys import participant_positions

__all__ = ["EventSpec", "derive"]

Candidates = pd.DataFrame | Callable[[pd.DataFrame], pd.DataFrame]
"""Candidate event rows (columns ``participant_id`` and integer ``day``), or a function of the
participant timeline that returns them."""

PerParticipant = pd.Series | Callable[[pd.DataFrame], pd.Series]
"""A day per participant (Series indexed by ``participant_id``; NaN = none), or a function of
the participant timeline that returns one."""

_NO_EVENT = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class EventSpec:
    """What a time-to-event outcome is made of.

    Attributes
    ----------
    name : str
        Outcome name (e.g. ``"stage_2"``, ``"relapse"``), for messages and reports.
    sources : tuple of (str, Candidates)
        ``(label, candidates)`` pairs in order of precedence: on a tie (same earliest day) the
        first listed source names the event. ``candidates`` is a DataFrame with columns
        ``participant_id`` (categorical over the cohort's ids, or text) and ``day``, or a
        callable ``timeline -> DataFrame``. Rows of participants not in the timeline are
        ignored.
    origin : Series or callable, optional
        Day from which time runs, per participant (indexed by ``participant_id``). ``None``
        (default): day 0, enrolment, for everyone. A participant whose origin is NaN, missing,
        or after ``follow_up_days`` is not at risk and gets no row.
    origin_inclusive : bool
        Whether a candidate on the origin day itself counts (default True).
    competing : Series or callable, optional
        Day of a competing event per participant (NaN = none), e.g. the withdrawal day. Ignored
        when after ``follow_up_days`` or before the origin.
    """

    name: str
    sources: tuple[tuple[str, Candidates], ...]
    origin: PerParticipant | None = None
    origin_inclusive: bool = True
    competing: PerParticipant | None = None


def derive(spec: EventSpec, timeline: pd.DataFrame) -> pd.DataFrame:
    """Time to the first event of ``spec`` for every participant at risk.

    Parameters
    ----------
    spec : EventSpec
        The outcome definition.
    timeline : DataFrame
        :func:`rehabstats.time.timeline.participant_timeline` output (indexed by ``participant_id``,
        with ``follow_up_days``).

    Returns
    -------
    DataFrame
        One row per participant at risk (origin defined and on or before ``follow_up_days``),
        in timeline order, with columns

        participant_id : str
        start_day : int
            The origin (days from enrolment).
        event_day : Int64
            Day of the event (days from enrolment); NA when none was observed.
        time : int
            ``event_day - start_day`` for an event; otherwise ``end - start_day`` where ``end``
            is the competing event's day or ``follow_up_days`` (censoring).
        event : bool
            The event was observed.
        event_source : str
            Label of the source that gave the event (first listed wins on a tie); NA without
            an event.
        competing : bool
            Observation ended by the competing event (never together with ``event``).

    Notes
    -----
    The earliest candidate is found with one pass of ``numpy.minimum.at`` per source over the
    key ``day * n_sources + source_rank``, so the earliest day wins and, on that day, the
    source listed first. See the module docstring for the inclusive/exclusive conventions.
    """
    ids = timeline.index
    follow = timeline["follow_up_days"].to_numpy(dtype="int64")
    origin = _per_participant(spec.origin, timeline)
    if origin is None:
        origin = np.zeros(len(ids), dtype="float64")
    at_risk = ~np.isnan(origin) & (origin <= follow)
    n_sources = len(spec.sources)
    best = np.full(len(ids), _NO_EVENT, dtype="int64")
    for rank, (_, candidates) in enumerate(spec.sources):
        frame = candidates(timeline) if callable(candidates) else candidates
        pos = participant_positions(frame["participant_id"], ids)
        day = frame["day"].to_numpy(dtype="int64")
        known = pos >= 0
        pos, day = pos[known], day[known]
        start = origin[pos]
        after = day >= start if spec.origin_inclusive else day > start
        keep = after & (day <= follow[pos])  # NaN origin compares False: not at risk
        np.minimum.at(best, pos[keep], day[keep] * n_sources + rank)
    has_event = best != _NO_EVENT
    event_day = np.where(has_event, best // max(n_sources, 1), -1)

    competing_day = _per_participant(spec.competing, timeline)
    if competing_day is None:
        competing_day = np.full(len(ids), np.nan)
    competing_day = np.where(
        (competing_day >= origin) & (competing_day <= follow), competing_day, np.nan
    )
    # an event on or before the competing event's day is observed; after it, it is not
    event = has_event & ~(event_day > competing_day)
    competing = ~event & ~np.isnan(competing_day)
    end = np.where(event, event_day, np.where(competing, competing_day, follow))

    labels = np.array([label for label, _ in spec.sources] + [None], dtype=object)
    source = labels[np.where(event, best % max(n_sources, 1), n_sources)]
    start_day = np.where(at_risk, origin, 0).astype("int64")
    out = pd.DataFrame(
        {
            "participant_id": ids.astype("str").to_numpy(),
            "start_day": start_day,
            "event_day": pd.array(np.where(event, event_day, 0), dtype="Int64"),
            "time": (end - start_day).astype("int64"),
            "event": event,
            "event_source": pd.array(source, dtype="str"),
            "competing": competing,
        }
    )
    out.loc[~event, "event_day"] = pd.NA
    return out.loc[at_risk].reset_index(drop=True)


def _per_participant(value: PerParticipant | None, timeline: pd.DataFrame) -> np.ndarray | None:
    """A per-participant day as a float array aligned with the timeline (NaN = none)."""
    if value is None:
        return None
    series = value(timeline) if callable(value) else value
    return series.reindex(timeline.index).to_numpy(dtype="float64", na_value=np.nan)
