"""Participant flow (CONSORT style): who was enrolled, started, completed the window, returned.

Counts per group and over the whole cohort (group :data:`rehabstats.constants.OVERALL`, first)
of the nested flow steps (:data:`FLOW_STEPS`), and the withdrawals by reason and flow step.
The remodelling window ends on day ``7 · window_weeks − 1`` of the analysis configuration
(:attr:`rehabstats.config.AnalysisConfig.window_end_day`, day 83 by default).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL

__all__ = [
    "FLOW_STEPS",
    "WITHDRAWAL_STEPS",
    "flow_counts",
    "order_reasons",
    "withdrawal_reasons",
]

FLOW_STEPS: tuple[tuple[str, str], ...] = (
    ("enrolled", "Enrolled"),
    ("never_started", "Never completed a session in the window"),
    ("started", "Started loading (at least one completed session)"),
    ("withdrawn_in_window", "Started, then withdrew during the window"),
    ("in_window", "Started, still within the window at the data cut-off"),
    ("completed_window", "Started and completed the window"),
    ("not_returned", "Completed the window, no return to running or sport (yet)"),
    ("returned_to_running", "Completed the window and returned to running or sport"),
    ("relapsed", "Returned, then relapsed"),
    ("withdrawn_after_window", "Completed the window, withdrew later"),
)
"""Flow steps in order: (step, label). Each step is a subset of an earlier one (see
:func:`flow_counts`), so a diagram's exits add up."""


def _flow_flags(participants: pd.DataFrame, window_days: int) -> pd.DataFrame:
    p = participants
    follow = p["follow_up_days"].astype("float64")
    withdrawn = p["withdrawn"].fillna(False).astype(bool)
    done = follow >= window_days
    started = p["sessions_completed"].fillna(0).astype("int64") >= 1
    completed = started & done
    returned = completed & p["at_risk_start_day"].notna()
    return pd.DataFrame(
        {
            "enrolled": True,
            "never_started": ~started,
            "started": started,
            "withdrawn_in_window": started & withdrawn & ~done,
            "in_window": started & ~withdrawn & ~done,
            "completed_window": completed,
            "not_returned": completed & ~returned,
            "returned_to_running": returned,
            "relapsed": returned & p["relapsed"].fillna(False).astype(bool),
            "withdrawn_after_window": completed & withdrawn,
        },
        index=p.index,
    )


def flow_counts(
    participants: pd.DataFrame, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """CONSORT-style participant flow, per group and overall.

    Parameters
    ----------
    participants : DataFrame
        One row per participant with follow_up_days, withdrawn, sessions_completed,
        at_risk_start_day and relapsed (``participant_metrics`` output) and the ``by`` column.
    by : str, optional
        Grouping column.
    config : AnalysisConfig, optional
        ``window_weeks``: the window ends on day ``window_end_day`` (7·window_weeks − 1; 83
        for 12 weeks). Default ``AnalysisConfig()``.

    Returns
    -------
    DataFrame
        One row per step and group (:data:`~rehabstats.constants.OVERALL` first), columns step, label, group, n and
        percent (100 · n / enrolled in that group). Steps (:data:`FLOW_STEPS`), nested so that
        each split adds up:

        * enrolled = never_started + started (started: at least one completed session in the
          window, ``sessions_completed ≥ 1``);
        * started = withdrawn_in_window (withdrew with follow-up ending before
          ``window_end_day``) + in_window (not withdrawn, follow-up still shorter) +
          completed_window (follow-up reached ``window_end_day``, withdrawn later or not);
        * completed_window = not_returned + returned_to_running (an at-risk start: a return to
          running or sport event, at any time in follow-up);
        * relapsed: returned, then relapsed (METRICS §8);
        * withdrawn_after_window: completed the window, withdrew later (information only).
    """
    flags = _flow_flags(participants, (config or AnalysisConfig()).window_end_day)
    parts = {OVERALL: flags}
    if by is not None:
        labels = participants[by].astype("str")
        for g in sorted(labels.unique()):
            parts[g] = flags[(labels == g).to_numpy()]
    rows = []
    for g, part in parts.items():
        enrolled = len(part)
        for step, label in FLOW_STEPS:
            n = int(part[step].sum())
            rows.append(
                {
                    "step": step,
                    "label": label,
                    "group": g,
                    "n": n,
                    "percent": 100 * n / enrolled if enrolled else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=["step", "label", "group", "n", "percent"])


def withdrawal_reasons(
    participants: pd.DataFrame, *, by: str | None = None, config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """Withdrawals by reason and flow step, per group and overall.

    Parameters
    ----------
    participants : DataFrame
        One row per participant with withdrawn, follow_up_days, sessions_completed,
        withdrawal_reason (missing reasons count as ``not recorded``) and the ``by`` column.
    by : str, optional
        Grouping column.
    config : AnalysisConfig, optional
        ``window_weeks`` (the window's end, as :func:`flow_counts`).

    Returns
    -------
    DataFrame
        Columns group, reason, when (``before starting`` / ``during window`` /
        ``after window``, matching the flow steps never_started, withdrawn_in_window and
        withdrawn_after_window), n; sorted by group, then by decreasing n.
    """
    columns = ["group", "reason", "when", "n"]
    withdrawn = participants["withdrawn"].fillna(False).astype(bool)
    p = participants[withdrawn]
    if p.empty:
        return pd.DataFrame(columns=columns).astype({"n": "int64"})
    started = p["sessions_completed"].fillna(0).astype("int64") >= 1
    done = p["follow_up_days"] >= (config or AnalysisConfig()).window_end_day
    reason = p.get("withdrawal_reason", pd.Series(pd.NA, index=p.index))
    frame = pd.DataFrame(
        {
            "reason": reason.astype("str").where(reason.notna(), "not recorded"),
            "when": np.select(
                [~started, done], ["before starting", "after window"], "during window"
            ),
            "group": p[by].astype("str") if by is not None else OVERALL,
        }
    )
    parts = [frame.assign(group=OVERALL)] if by is not None else []
    parts.append(frame)
    counts = (
        pd.concat(parts)
        .groupby(["group", "reason", "when"], sort=False)
        .size()
        .rename("n")
        .reset_index()
    )
    order = {g: i for i, g in enumerate([OVERALL, *sorted(set(frame["group"]) - {OVERALL})])}
    counts["_g"] = counts["group"].map(order)
    counts = counts.sort_values(["_g", "n", "reason"], ascending=[True, False, True])
    return counts.drop(columns="_g").reset_index(drop=True)[columns]


WITHDRAWAL_STEPS = ("before starting", "during window", "after window")
"""The flow steps a withdrawal is counted in (``when`` of :func:`withdrawal_reasons`)."""


def order_reasons(wide: pd.DataFrame, *, column: str = OVERALL) -> pd.DataFrame:
    """Order a withdrawal table indexed by (reason, when) for reading.

    Reasons by decreasing total of ``column`` (then alphabetically), and within a reason its
    flow steps in flow order (:data:`WITHDRAWAL_STEPS`), so that each reason's rows stay
    together.
    """
    reason = wide.index.get_level_values("reason")
    when = wide.index.get_level_values("when")
    total = wide[column].groupby(reason).transform("sum").to_numpy()
    rank = {step: i for i, step in enumerate(WITHDRAWAL_STEPS)}
    key = pd.DataFrame(
        {"total": -total, "reason": reason, "step": [rank.get(w, len(rank)) for w in when]}
    )
    positions = key.sort_values(["total", "reason", "step"], kind="stable").index
    return wide.iloc[positions]
