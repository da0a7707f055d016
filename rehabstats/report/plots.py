"""Figures from metric outputs (seaborn/matplotlib): a DataFrame and ``ax=None`` in, the Axes out.

Every function draws on the Axes it is given (or a new figure's Axes) and returns it, so it can
be used on its own in a notebook or composed into report figures by
:mod:`rehabstats.report.sections`.
Colours are the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies);
where colour carries meaning, marker shape or position carries it too. Axis labels carry units.
Nothing changes matplotlib's global state: styling is applied inside ``matplotlib.rc_context``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyBboxPatch, Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from rehabstats.constants import OVERALL
from rehabstats.report.format import group_label
from rehabstats.stats.summaries import mean_ci

__all__ = [
    "OKABE_ITO",
    "acwr_distribution",
    "flow_diagram_size",
    "STAGE_COLORS",
    "STATE_LABELS",
    "STYLE",
    "add_at_risk_table",
    "adherence_by_week",
    "audit_bullet",
    "cumulative_incidence",
    "flow_diagram",
    "group_colors",
    "km_curves",
    "new_axes",
    "pain_trajectories",
    "running_volume",
    "stage_occupancy",
    "swimmer",
    "visa_change",
]

OKABE_ITO: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
"""Okabe & Ito (2008) colour-blind-safe palette."""

_GROUP_ORDER = ("blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue")

STAGE_COLORS: dict[str, str] = {
    "not_started": "#D9D9D9",
    "stage_1": OKABE_ITO["sky_blue"],
    "stage_2": OKABE_ITO["blue"],
    "stage_3": OKABE_ITO["bluish_green"],
    "stage_4": OKABE_ITO["orange"],
    "withdrawn": "#6E6E6E",
}
"""Colour of each stage-occupancy state (also used by the swimmer plot)."""

STATE_LABELS: dict[str, str] = {
    "not_started": "Not started",
    "stage_1": "Stage 1 isometric",
    "stage_2": "Stage 2 slow isotonic",
    "stage_3": "Stage 3 heavy slow resistance",
    "stage_4": "Stage 4 elastic/plyometric",
    "withdrawn": "Withdrawn",
}

STYLE: dict[str, Any] = {
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "figure.facecolor": "white",
    # labels come from the data (sites, arms, reasons, ids): "$...$" is text, never mathtext
    # (a site called "a$b$c" or "$\\x$" would be typeset wrongly or stop the figure)
    "text.parse_math": False,
}
"""rcParams applied (in a context manager) while a figure is drawn. Text is drawn literally
(``text.parse_math`` off): every label may hold data. Labels set on texts that exist before a
plot function runs (tick labels, titles of Axes made elsewhere) say ``parse_math=False``."""

F = TypeVar("F", bound=Callable[..., Any])


def styled(fn: F) -> F:
    """Run a plotting function inside ``rc_context(STYLE)`` (no global state is changed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_axes(figsize: tuple[float, float] = (7.5, 4.0)) -> Axes:
    """A new pyplot figure's Axes (for stand-alone use of the plot functions)."""
    import matplotlib.pyplot as plt

    with mpl.rc_context(STYLE):
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def group_colors(groups: Sequence[object]) -> dict[str, str]:
    """A stable colour per group (sorted), the whole cohort (``all``) in black."""
    names = sorted({str(g) for g in groups} - {OVERALL})
    colors = {g: OKABE_ITO[_GROUP_ORDER[i % len(_GROUP_ORDER)]] for i, g in enumerate(names)}
    colors[OVERALL] = "#333333"
    return colors


def _percent_axis(ax: Axes, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _: f"{100 * v:.0f}%")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _week_axis(ax: Axes, last_week: int) -> None:
    ax.set_xlim(0.5, last_week + 0.5)
    ax.xaxis.set_major_locator(MultipleLocator(1 if last_week <= 16 else 2))
    ax.set_xlabel("Week since enrolment (week 1 = days 0-6)")


def _grouped(data: pd.DataFrame, hue: str | None) -> tuple[pd.DataFrame, str, str | None]:
    """(data, the column to draw by, hue): ``hue`` when given and in ``data``, else one group,
    the whole cohort (column ``_all``, hue None)."""
    if hue is not None and hue in data:
        return data, hue, hue
    return data.assign(_all=OVERALL), "_all", None


def _mean_and_band(
    ax: Axes,
    x: Any,
    summary: pd.DataFrame,
    *,
    color: str,
    alpha: float,
    lw: float,
    label: str,
    within: tuple[float, float] | None = None,
) -> None:
    """A group's weekly means (``summary``: mean, ci_low, ci_high) as a line with dots over
    its confidence band (clipped to ``within``)."""
    low, high = summary["ci_low"], summary["ci_high"]
    if within is not None:
        low, high = low.clip(*within), high.clip(*within)
    ax.fill_between(x, low, high, color=color, alpha=alpha, lw=0)
    ax.plot(x, summary["mean"], color=color, lw=lw, marker="o", ms=3.5, label=label)


def _by_week(
    ax: Axes,
    data: pd.DataFrame,
    *,
    top: float,
    ylabel: str,
    line: tuple[float, str] | None = None,
) -> Axes:
    """Finish a plot of weekly values: a dashed reference ``line`` (value, label), the weeks
    of ``data`` (1-12 without data), the y axis from 0 to ``top``, the legend outside."""
    if line is not None:
        ax.axhline(line[0], color="#444444", ls="--", lw=1, label=line[1])
    _week_axis(ax, int(data["week"].max()) if len(data) else 12)
    ax.set_ylim(0, top)
    ax.set_ylabel(ylabel)
    _legend(ax, outside=True)
    return ax


def _legend(ax: Axes, *, title: str | None = None, outside: bool = False, **kw: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if outside:
        ax.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), **kw)
    else:
        ax.legend(handles, labels, title=title, **kw)


# ---- pain and adherence --------------------------------------------------------------------


@styled
def pain_trajectories(
    weekly: pd.DataFrame,
    *,
    hue: str | None = "group",
    ax: Axes | None = None,
    individuals: bool = True,
    confidence: float = 0.95,
    pain_limit: float | None = None,
) -> Axes:
    """Weekly mean morning pain: faint individual lines, group means with a confidence band.

    Parameters
    ----------
    weekly : DataFrame
        ``weekly_pain`` output (participant_id, week, pain_morning_mean), with the ``hue``
        column added when comparing groups.
    hue : str, optional
        Grouping column (one colour per group); None or absent draws one trajectory.
    individuals : bool
        Draw each participant's weekly means as a faint line.
    confidence : float
        Level of the t-based band around each group's weekly mean.
    pain_limit : float, optional
        Draw the pain-monitoring limit as a dashed reference line.
    """
    ax = ax or new_axes()
    data = weekly.dropna(subset=["pain_morning_mean"])
    data, key, hue = _grouped(data, hue)
    colors = group_colors(data[key].unique())
    if individuals and len(data):
        ordered = data.sort_values(["participant_id", "week"])
        for g, part in ordered.groupby(key, sort=True, observed=True):
            segments = [
                np.column_stack([p["week"].to_numpy(), p["pain_morning_mean"].to_numpy()])
                for _, p in part.groupby("participant_id", sort=False, observed=True)
                if len(p) > 1
            ]
            alpha = float(np.clip(6 / max(len(segments), 1), 0.04, 0.25))
            ax.add_collection(
                LineCollection(segments, colors=colors[str(g)], linewidths=0.6, alpha=alpha)
            )
    summary = mean_ci(data, "pain_morning_mean", [key, "week"], confidence=confidence)
    band = 0.25 if summary[key].nunique() <= 3 else 0.12
    for g, part in summary.groupby(key, sort=True, observed=True):
        label = f"{g} (mean, {confidence:.0%} CI)" if hue else f"Mean ({confidence:.0%} CI)"
        _mean_and_band(ax, part["week"], part, color=colors[str(g)], alpha=band, lw=2.2,
                       label=label)  # fmt: skip
    ax.yaxis.set_major_locator(MultipleLocator(2))
    line = None if pain_limit is None else (pain_limit, f"Pain limit ({pain_limit:g})")
    return _by_week(ax, data, top=10, ylabel="Morning pain, NRS (0-10)", line=line)


@styled
def adherence_by_week(
    weekly: pd.DataFrame,
    *,
    hue: str | None = "group",
    ax: Axes | None = None,
    threshold: float | None = 0.8,
    value: str = "adherence_sessions",
    confidence: float = 0.95,
) -> Axes:
    """Mean weekly session adherence per group with a confidence band.

    Parameters
    ----------
    weekly : DataFrame
        ``weekly_adherence`` output (participant_id, week, adherence_sessions, ...), with the
        ``hue`` column added when comparing groups. Weeks without a scheduled session (NaN) are
        left out of that week's mean.
    threshold : float, optional
        The adherence threshold (0-1) drawn as a dashed line.
    """
    ax = ax or new_axes()
    data = weekly.dropna(subset=[value])
    data, key, hue = _grouped(data, hue)
    colors = group_colors(data[key].unique())
    summary = mean_ci(data, value, [key, "week"], confidence=confidence)
    band = 0.18 if summary[key].nunique() <= 3 else 0.08
    offsets = np.linspace(-0.12, 0.12, max(summary[key].nunique(), 1))
    for (g, part), dx in zip(summary.groupby(key, sort=True, observed=True), offsets, strict=False):
        x = part["week"].to_numpy() + (dx if hue else 0)
        _mean_and_band(ax, x, part, color=colors[str(g)], alpha=band, lw=2,
                       label=str(g) if hue else "Mean", within=(0, 1))  # fmt: skip
    _percent_axis(ax)
    line = None if threshold is None else (threshold, f"Adherence threshold ({threshold:.0%})")
    return _by_week(ax, data, top=1.02, ylabel="Sessions completed, % of scheduled", line=line)


# ---- VISA-A --------------------------------------------------------------------------------


@styled
def visa_change(
    outcomes: pd.DataFrame,
    *,
    hue: str | None = "group",
    ax: Axes | None = None,
    value: str = "visa_a_change_12",
    mcid: float | None = 14,
    counts: Mapping[str, object] | None = None,
) -> Axes:
    """VISA-A change from baseline to 12 weeks per group: box plot with the individual points.

    Parameters
    ----------
    outcomes : DataFrame
        ``visa_a_outcomes`` output (visa_a_change_12 ...) with the ``hue`` column.
    mcid : float, optional
        Minimal clinically important difference, drawn as the responder line.
    counts : mapping, optional
        The n shown under each group (group -> count or suppression marker, ``all`` without
        ``hue``), e.g. as a report that leaves the team may show them; default: counted.
    """
    import seaborn as sns

    ax = ax or new_axes((6.5, 4.0))
    data = outcomes.dropna(subset=[value])
    data, key, hue = _grouped(data, hue)
    data = data.assign(**{key: data[key].astype("str")})
    order = sorted(data[key].unique())
    colors = group_colors(order)
    palette = {g: colors[g] for g in order}
    if len(data):
        with warnings.catch_warnings():
            # seaborn 0.13 passes matplotlib 3.11's deprecated boxplot(vert=...)
            warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
            sns.boxplot(
                data=data,
                x=key,
                y=value,
                hue=key,
                order=order,
                palette=palette,
                showfliers=False,
                width=0.5,
                ax=ax,
                legend=False,
                boxprops={"alpha": 0.35},
                linewidth=1.2,
            )
        # the individual points, jittered reproducibly (seaborn's stripplot draws its jitter
        # from numpy's global random state: two renders of one report would differ)
        position = data[key].map({g: i for i, g in enumerate(order)}).to_numpy(dtype="float64")
        jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=len(data))
        ax.scatter(position + jitter, data[value].to_numpy(dtype="float64"),
                   c=data[key].map(palette).tolist(), s=2.6**2, alpha=0.6, linewidths=0,
                   zorder=3)  # fmt: skip
        shown = dict(data[key].value_counts()) if counts is None else dict(counts)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([f"{g}\n(n = {_n(shown.get(g, '–'))})" for g in order],
                           parse_math=False)  # fmt: skip
    ax.axhline(0, color="#444444", lw=0.8)
    if mcid is not None:
        ax.axhline(
            mcid,
            color=OKABE_ITO["vermillion"],
            ls="--",
            lw=1.2,
            label=f"Responder threshold (MCID {mcid:g} points)",
        )
        _legend(ax, loc="lower right")
    ax.set_xlabel("")
    ax.set_ylabel("VISA-A change, baseline to week 12 (points)")
    return ax


# ---- stages --------------------------------------------------------------------------------


def _step_xy(time: np.ndarray, value: np.ndarray, start: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.concatenate([[0.0], time])
    v = np.concatenate([[start], value])
    return t, v


@styled
def km_curves(
    km: pd.DataFrame,
    *,
    ax: Axes | None = None,
    stage: int | None = None,
    kind: str = "reached",
    ci: bool = True,
    max_days: float | None = None,
    at_risk: pd.DataFrame | None = None,
    legend: bool = True,
    risk_labels: bool = True,
    until: Mapping[str, float] | None = None,
) -> Axes:
    """Kaplan–Meier curves per group (one stage), optionally with a number-at-risk table.

    Parameters
    ----------
    km : DataFrame
        ``time_to_stage`` output (stage, group, time_days, survival, ci_low, ci_high, ...).
    stage : int, optional
        The stage to draw (required when ``km`` holds several).
    kind : {"reached", "survival"}
        ``reached`` draws 1 − S(t), the proportion who have reached the stage; ``survival``
        draws S(t).
    max_days : float, optional
        Right end of the time axis (default: the last time in the table).
    at_risk : DataFrame, optional
        Number at risk (group, time, n; see :func:`rehabstats.stats.summaries.number_at_risk`)
        to show
        in a table under the plot (:func:`add_at_risk_table`).
    risk_labels : bool
        Name the groups beside the at-risk table (off for panels right of the first).
    until : mapping, optional
        Last day to draw per group (e.g. where the risk set becomes too small to show in a
        report that leaves the team); a group at 0 is not drawn. Colours stay those of all
        groups.
    """
    ax = ax or new_axes()
    data = km if stage is None or "stage" not in km else km[km["stage"] == stage]
    groups = sorted(data["group"].astype("str").unique())
    colors = group_colors(groups)
    last = float(max_days) if max_days is not None else float(data["time_days"].max() or 84)
    for g in groups:
        part = data[data["group"].astype("str") == g].sort_values("time_days")
        end = last
        if until is not None and g in until:
            end = min(last, float(until[g]))
            if end <= 0:
                continue
            part = part[part["time_days"] < end]
        t = part["time_days"].to_numpy(dtype=float) / 7
        s = part["survival"].to_numpy(dtype=float)
        lo = part["ci_low"].to_numpy(dtype=float)
        hi = part["ci_high"].to_numpy(dtype=float)
        if kind == "reached":
            s, lo, hi = 1 - s, 1 - hi, 1 - lo
            start = 0.0
        else:
            start = 1.0
        tt, ss = _step_xy(t, s, start)
        tt = np.append(tt, end / 7)
        ss = np.append(ss, ss[-1])
        label = group_label(g, whole="participants")
        ax.step(tt, ss, where="post", color=colors[g], lw=2, label=label)
        if ci and len(t):
            _, ll = _step_xy(t, lo, start)
            _, hh = _step_xy(t, hi, start)
            ll = np.append(ll, ll[-1])
            hh = np.append(hh, hh[-1])
            ax.fill_between(tt, ll, hh, step="post", color=colors[g], alpha=0.15, lw=0)
    ax.set_xlim(0, last / 7)
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_locator(MultipleLocator(2 if last / 7 <= 16 else 4))
    _percent_axis(ax)
    ax.set_xlabel("Weeks since enrolment")
    ax.set_ylabel("Reached the stage, %" if kind == "reached" else "Not yet reached, %")
    if stage is not None:
        ax.set_title(f"Stage {stage}")
    if legend:
        _legend(ax, loc="lower right" if kind == "reached" else "upper right")
    if at_risk is not None:
        add_at_risk_table(ax, at_risk, colors=colors, labels=risk_labels)
    return ax


@styled
def add_at_risk_table(
    ax: Axes,
    at_risk: pd.DataFrame,
    *,
    colors: Mapping[str, str] | None = None,
    height: float = 0.07,
    time_unit_days: float = 7.0,
    labels: bool = True,
) -> Axes:
    """Add a number-at-risk table under a survival plot; returns the table's Axes.

    Parameters
    ----------
    ax : Axes
        The survival plot (time axis in weeks, as :func:`km_curves` draws it).
    at_risk : DataFrame
        Columns group, time (days), n.
    height : float
        Height of one table row as a fraction of the plot's height.
    labels : bool
        Name the groups (coloured) left of the table.
    """
    groups = list(dict.fromkeys(at_risk["group"].astype("str")))
    colors = dict(colors or group_colors(groups))
    rows = max(len(groups), 1)
    table = ax.inset_axes([0, -0.24 - height * rows, 1, height * rows], sharex=ax)
    table.set_ylim(-0.5, rows - 0.5)
    table.invert_yaxis()
    for i, g in enumerate(groups):
        part = at_risk[at_risk["group"].astype("str") == g]
        for t, n in zip(part["time"], part["n"], strict=True):
            x = t / time_unit_days
            if ax.get_xlim()[0] <= x <= ax.get_xlim()[1]:
                table.text(
                    x,
                    i,
                    _n(n),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=colors.get(g, "#333333"),
                )
    table.set_yticks(range(rows))
    names = [group_label(g, whole="") for g in groups]
    table.set_yticklabels(names if labels else [""] * rows, fontsize=8, parse_math=False)
    for tick, g in zip(table.get_yticklabels(), groups, strict=False):
        tick.set_color(colors.get(g, "#333333"))
    table.tick_params(axis="both", length=0)
    table.tick_params(axis="y", pad=12)
    table.tick_params(axis="x", labelbottom=False)
    table.grid(False)
    for spine in table.spines.values():
        spine.set_visible(False)
    table.set_title("Number at risk", fontsize=8, fontweight="normal", loc="left", pad=2)
    return table


@styled
def stage_occupancy(
    occupancy: pd.DataFrame,
    *,
    ax: Axes | None = None,
    group: str | None = None,
    legend: bool = True,
) -> Axes:
    """Stage occupancy at the end of each week as stacked bars (proportions).

    Parameters
    ----------
    occupancy : DataFrame
        ``stage_occupancy`` output (group, week, state, n, proportion).
    group : str, optional
        The group to draw (required when ``occupancy`` holds several).
    """
    ax = ax or new_axes()
    data = occupancy if group is None else occupancy[occupancy["group"].astype("str") == group]
    wide = data.pivot_table(
        index="week", columns="state", values="proportion", aggfunc="sum", observed=True
    ).fillna(0.0)
    states = [s for s in STAGE_COLORS if s in wide.columns] + [
        s for s in wide.columns if s not in STAGE_COLORS
    ]
    order = ["stage_4", "stage_3", "stage_2", "stage_1", "not_started", "withdrawn"]
    states = [s for s in order if s in states] + [s for s in states if s not in order]
    bottom = np.zeros(len(wide))
    for s in states:
        ax.bar(
            wide.index,
            wide[s],
            bottom=bottom,
            width=0.85,
            color=STAGE_COLORS.get(s, "#999"),
            label=STATE_LABELS.get(s, s),
            edgecolor="white",
            linewidth=0.4,
        )
        bottom += wide[s].to_numpy()
    n = data.groupby("week", observed=True)["n"].sum()
    for w, total in n.items():
        ax.text(w, 1.01, f"{int(total)}", ha="center", va="bottom", fontsize=7, color="#555555")
    _week_axis(ax, int(wide.index.max()) if len(wide) else 12)
    ax.set_ylim(0, 1.08)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    _percent_axis(ax)
    ax.set_ylabel("Participants, % (n above bars)")
    ax.grid(axis="x", visible=False)
    if group is not None:
        ax.set_title(group_label(group, whole="participants"), parse_math=False)
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


@styled
def swimmer(
    timelines: pd.DataFrame,
    *,
    ax: Axes | None = None,
    label: str = "participant_id",
    max_days: float | None = None,
) -> Axes:
    """Swimmer plot: each participant's stage timeline as a horizontal bar.

    Parameters
    ----------
    timelines : DataFrame
        One row per participant (drawn top to bottom in the given order) with participant_id,
        follow_up_days, days_to_stage_2/3/4 (NaN when not reached), withdrawn, and optionally
        last_session_day, at_risk_start_day, days_to_relapse, relapsed, needs_review.

    Notes
    -----
    A bar segment runs from each stage's first entry to the next stage's first entry (later
    regressions are not drawn); the bar ends at the end of follow-up. Markers: ``|`` last
    completed session, ``▲`` return to running or sport, ``✕`` relapse, ``■`` withdrawal.
    Participants flagged ``needs_review`` have their label in bold.
    """
    ax = ax or new_axes((8, max(2.5, 0.22 * len(timelines) + 1)))
    data = timelines.reset_index(drop=True)
    y = np.arange(len(data))
    end = data["follow_up_days"].to_numpy(dtype=float)
    starts = {1: np.zeros(len(data))}
    for s in (2, 3, 4):
        col = f"days_to_stage_{s}"
        starts[s] = data[col].to_numpy(dtype=float) if col in data else np.full(len(data), np.nan)
    for s in (1, 2, 3, 4):
        left = starts[s]
        right = end.copy()
        for nxt in range(s + 1, 5):
            right = np.where(
                np.isnan(right) | (starts[nxt] < right) & ~np.isnan(starts[nxt]),
                np.fmin(right, starts[nxt]),
                right,
            )
        ok = ~np.isnan(left) & (right > left)
        ax.barh(
            y[ok],
            (right - left)[ok] / 7,
            left=left[ok] / 7,
            height=0.62,
            color=STAGE_COLORS[f"stage_{s}"],
            label=STATE_LABELS[f"stage_{s}"],
            lw=0,
        )

    def marker(days: np.ndarray, mask: np.ndarray, **kw: Any) -> None:
        ok = mask & ~np.isnan(days)
        if ok.any():
            ax.scatter(days[ok] / 7, y[ok], zorder=3, **kw)

    if "last_session_day" in data:
        marker(
            data["last_session_day"].to_numpy(dtype=float),
            np.ones(len(data), bool),
            marker="|",
            s=60,
            color="black",
            linewidths=1.4,
            label="Last completed session",
        )
    if "at_risk_start_day" in data:
        rtr = data["at_risk_start_day"].to_numpy(dtype=float)
        marker(
            rtr,
            np.ones(len(data), bool),
            marker="^",
            s=26,
            color="white",
            edgecolors="black",
            linewidths=0.9,
            label="Returned to running/sport",
        )
        if "days_to_relapse" in data:
            rel = rtr + data["days_to_relapse"].to_numpy(dtype=float)
            relapsed = data.get("relapsed", pd.Series(True, index=data.index))
            marker(
                rel,
                relapsed.fillna(False).astype(bool).to_numpy(),
                marker="X",
                s=36,
                color=OKABE_ITO["vermillion"],
                edgecolors="black",
                linewidths=0.5,
                label="Relapse",
            )
    withdrawn = data["withdrawn"].fillna(False).astype(bool).to_numpy()
    marker(
        end,
        withdrawn,
        marker="s",
        s=24,
        color="#6E6E6E",
        edgecolors="black",
        linewidths=0.5,
        label="Withdrawn",
    )
    ax.set_yticks(y)
    ax.set_yticklabels(data[label].astype("str"), fontsize=7.5, parse_math=False)
    if "needs_review" in data:
        for tick, flag in zip(
            ax.get_yticklabels(), data["needs_review"].fillna(False), strict=True
        ):
            if flag:
                tick.set_fontweight("bold")
    ax.set_ylim(len(data) - 0.5, -0.5)
    right_end = (max_days if max_days is not None else np.nanmax(np.append(end, 84))) / 7
    ax.set_xlim(0, right_end + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=14))
    ax.axvline(12, color="#444444", ls=":", lw=1)
    ax.set_xlabel("Weeks since enrolment (dotted line: end of the 12-week window)")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


# ---- relapse -------------------------------------------------------------------------------


@styled
def cumulative_incidence(
    incidence: pd.DataFrame,
    *,
    ax: Axes | None = None,
    markers_at: Sequence[int] | None = None,
) -> Axes:
    """Cumulative incidence of relapse per group (a step function of weeks since return).

    Parameters
    ----------
    incidence : DataFrame
        ``relapse_incidence`` output (group, week, cumulative_incidence).
    markers_at : sequence of int, optional
        Weeks to mark and label with their value (e.g. the configured incidence weeks).
    """
    ax = ax or new_axes()
    groups = sorted(incidence["group"].astype("str").unique())
    colors = group_colors(groups)
    for g in groups:
        part = incidence[incidence["group"].astype("str") == g].sort_values("week")
        t = np.concatenate([[0.0], part["week"].to_numpy(dtype=float)])
        v = np.concatenate([[0.0], part["cumulative_incidence"].to_numpy(dtype=float)])
        label = group_label(g, whole="participants at risk")
        ax.step(t, v, where="post", color=colors[g], lw=2, label=label)
        if markers_at:
            m = part[part["week"].isin(list(markers_at))]
            ax.scatter(m["week"], m["cumulative_incidence"], color=colors[g], s=18, zorder=3)
    ax.set_xlim(0, float(incidence["week"].max()) if len(incidence) else 26)
    top = float(incidence["cumulative_incidence"].max()) if len(incidence) else 0.1
    ax.set_ylim(0, min(1.0, max(0.1, top * 1.25)))
    ax.xaxis.set_major_locator(MultipleLocator(4))
    _percent_axis(ax)
    ax.set_xlabel("Weeks since return to running or sport")
    ax.set_ylabel("Relapsed, cumulative %")
    _legend(ax, loc="upper left")
    return ax


# ---- return to running ---------------------------------------------------------------------


@styled
def running_volume(
    volume: pd.DataFrame,
    *,
    ax: Axes | None = None,
) -> Axes:
    """Weekly running minutes by week since the first run: each group's median and quartiles.

    Parameters
    ----------
    volume : DataFrame
        ``rehabstats.metrics.running.running_volume`` output (group, week_since_first_run,
        runners, median, q1, q3).

    Notes
    -----
    The median is a line with dots over the band between the quartiles (Q1 to Q3); groups are
    told apart by colour and by the legend, the whole cohort (``all``) in black.
    """
    ax = ax or new_axes()
    groups = sorted(volume["group"].astype("str").unique())
    colors = group_colors(groups)
    band = 0.18 if len(groups) <= 3 else 0.08
    for g in groups:
        part = volume[volume["group"].astype("str") == g].sort_values("week_since_first_run")
        x = part["week_since_first_run"].to_numpy(dtype=float)
        ax.fill_between(x, part["q1"], part["q3"], color=colors[g], alpha=band, lw=0)
        label = f"{group_label(g, whole='runners')} (median, Q1-Q3)"
        ax.plot(x, part["median"], color=colors[g], lw=2, marker="o", ms=3.5, label=label)
    last = int(volume["week_since_first_run"].max()) if len(volume) else 12
    ax.set_xlim(0.5, last + 0.5)
    ax.xaxis.set_major_locator(MultipleLocator(1 if last <= 16 else 2))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Week since the first run (week 1 = the study week of the first run)")
    ax.set_ylabel("Running, minutes per week")
    _legend(ax, outside=True)
    return ax


@styled
def acwr_distribution(
    histogram: pd.DataFrame,
    *,
    spike: float,
    ax: Axes | None = None,
) -> Axes:
    """The distribution of the daily ACWR per group, with the spike threshold marked.

    Parameters
    ----------
    histogram : DataFrame
        ``rehabstats.metrics.running.acwr_histogram`` output (group, bin_low, bin_high, share,
        runners).
    spike : float
        The spike threshold (``acwr_spike``), drawn as a dashed line; days above it are right
        of the line.

    Notes
    -----
    Each group is a step outline of the share of its participant-days per bin (outlines, not
    filled bars, so that groups overlaid stay readable); the last, open bin is drawn one bin
    wide and labelled with ``≥``.
    """
    ax = ax or new_axes()
    groups = sorted(histogram["group"].astype("str").unique())
    colors = group_colors(groups)
    width = 0.1
    top = 3.0
    for g in groups:
        part = histogram[histogram["group"].astype("str") == g].sort_values("bin_low")
        low = part["bin_low"].to_numpy(dtype=float)
        width = float(low[1] - low[0]) if len(low) > 1 else width
        top = float(low[-1])
        edges = np.append(low, low[-1] + width)
        runners = part["runners"].iloc[0]
        label = f"{group_label(g, whole='runners')} ({_n(runners)} runners)"
        ax.stairs(part["share"].to_numpy(dtype=float), edges, color=colors[g], lw=1.8,
                  label=label)  # fmt: skip
    ax.axvline(spike, color="#444444", ls="--", lw=1.2, label=f"Spike threshold ({spike:g})")
    ax.set_xlim(0, top + width)
    ticks = np.arange(0, top + width / 2, 0.5)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"≥ {t:g}" if np.isclose(t, top) else f"{t:g}" for t in ticks],
                       parse_math=False)  # fmt: skip
    _percent_axis(ax)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))  # whole percents
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Acute:chronic workload ratio (EWMA, running minutes)")
    ax.set_ylabel("Share of runner-days")
    _legend(ax, outside=True)
    return ax


# ---- audit dashboard -----------------------------------------------------------------------


@styled
def audit_bullet(
    summary: pd.DataFrame,
    *,
    metric: str,
    ax: Axes | None = None,
) -> Axes:
    """One audit metric across sites against its target (a bullet chart).

    Parameters
    ----------
    summary : DataFrame
        ``rehabstats.metrics.review.audit_summary`` output (site, metric, label, unit, value, ci_low,
        ci_high, target, direction, met, n).
    metric : str
        The metric to draw.

    Notes
    -----
    Each site is a point with its confidence interval; the target is a dashed vertical line
    and the side of it that meets the target is shaded. Met targets are filled circles, missed
    ones open diamonds (shape as well as colour).
    """
    ax = ax or new_axes((6, 2.5))
    data = summary[summary["metric"] == metric].reset_index(drop=True)
    if data.empty:
        ax.set_axis_off()
        return ax
    unit = data["unit"].iloc[0]
    target = float(data["target"].iloc[0])
    direction = data["direction"].iloc[0]
    y = np.arange(len(data))
    hi_vals = np.nan_to_num(data[["value", "ci_high"]].to_numpy(dtype=float), nan=0.0)
    if unit == "proportion":
        lo_lim, hi_lim = -0.02, 1.04  # room for markers at 0% and 100%
    else:
        lo_lim, hi_lim = 0.0, max(target * 2, float(hi_vals.max()) * 1.1, 1.0)
    if direction == "at_least":
        ax.axvspan(target, hi_lim, color=OKABE_ITO["bluish_green"], alpha=0.08, lw=0)
    else:
        ax.axvspan(lo_lim, target, color=OKABE_ITO["bluish_green"], alpha=0.08, lw=0)
    ax.axvline(target, color="#333333", ls="--", lw=1.2)
    for i, row in data.iterrows():
        met = False if pd.isna(row["met"]) else bool(row["met"])
        color = OKABE_ITO["blue"] if met is True else OKABE_ITO["vermillion"]
        if pd.notna(row["ci_low"]):
            ax.plot([row["ci_low"], row["ci_high"]], [i, i], color=color, lw=2, alpha=0.7)
        if pd.notna(row["value"]):
            ax.scatter(
                row["value"],
                i,
                s=60,
                zorder=3,
                marker="o" if met is True else "D",
                facecolor=color if met is True else "white",
                edgecolor=color,
                linewidths=1.8,
            )
    ax.set_yticks(y)
    sites = [group_label(s, whole="sites") for s in data["site"]]
    ax.set_yticklabels([f"{s} (n = {_n(n)})" for s, n in zip(sites, data["n"], strict=True)],
                       parse_math=False)  # fmt: skip
    ax.set_ylim(len(data) - 0.5, -0.7)
    ax.set_xlim(lo_lim, hi_lim)
    if unit == "proportion":
        ax.set_xticks(np.linspace(0, 1, 6))
        _percent_axis(ax, "x")
    ax.grid(axis="y", visible=False)
    sign = "≥" if direction == "at_least" else "≤"
    shown = f"{target:.0%}" if unit == "proportion" else f"{target:g}"
    ax.set_title(f"{data['label'].iloc[0]} (target {sign} {shown})")
    ax.set_xlabel(data["unit_label"].iloc[0] if "unit_label" in data else "")
    return ax


# ---- participant flow ----------------------------------------------------------------------

_FLOW_MAIN = (
    ("enrolled", "Enrolled"),
    ("started", "Started loading"),
    ("completed_window", "Completed the 12-week window"),
    ("returned_to_running", "Returned to running or sport"),
    ("relapsed", "Relapsed"),
)
_FLOW_EXITS = {
    "enrolled": (("never_started", "Never completed a session"),),
    "started": (
        ("withdrawn_in_window", "Withdrew during the window"),
        ("in_window", "Still within the window at the cut-off"),
    ),
    "completed_window": (("not_returned", "Not (yet) returned to running"),),
}
_LINE_PT = 12.5  # height of a text line at 8.5 pt
_PAD_PT = 12.0


def _n(value: object) -> str:
    """A count as text; a suppression marker (``<5``, ``*``) as it is."""
    return value if isinstance(value, str) else f"{int(value)}"  # type: ignore[call-overload]


def _flow_layout(
    flow: pd.DataFrame, reasons: pd.DataFrame | None, max_reasons: int
) -> tuple[list[tuple[str, list[str], list[tuple[str, list[str]]]]], float]:
    """Box texts and the diagram's height in points."""
    groups = [g for g in dict.fromkeys(flow["group"]) if g != OVERALL]
    counts = flow.set_index(["step", "group"])["n"]

    def lines(step: str, title: str) -> list[str]:
        out = [title, f"n = {_n(counts[(step, OVERALL)])}"]
        if groups:
            per_group = [f"{g} {_n(counts[(step, g)])}" for g in groups]
            for i in range(0, len(per_group), 3):  # at most three groups per line
                out.append(" · ".join(per_group[i : i + 3]))
        return out

    layout = []
    height = 0.0
    for step, title in _FLOW_MAIN:
        exits = []
        for exit_step, exit_title in _FLOW_EXITS.get(step, ()):
            text = lines(exit_step, exit_title)
            if exit_step == "withdrawn_in_window" and reasons is not None and len(reasons):
                r = reasons[(reasons["group"] == OVERALL) & (reasons["when"] == "during window")]
                text += [f"{row.reason}: {_n(row.n)}" for row in r.head(max_reasons).itertuples()]
                if len(r) > max_reasons:
                    rest = r["n"].iloc[max_reasons:]
                    withheld = [v for v in rest if isinstance(v, str)]
                    total = withheld[0] if withheld else _n(rest.sum())
                    text.append(f"other reasons: {total}")
            exits.append((exit_step, text))
        main = lines(step, title)
        layout.append((step, main, exits))
        height += len(main) * _LINE_PT + _PAD_PT
        if exits:
            height += sum(len(t) * _LINE_PT + _PAD_PT for _, t in exits) + 10 * len(exits) + 8
        else:
            height += 26
    return layout, height


def flow_diagram_size(
    flow: pd.DataFrame,
    reasons: pd.DataFrame | None = None,
    *,
    width: float = 9.0,
    max_reasons: int = 6,
) -> tuple[float, float]:
    """Figure size (inches) that fits :func:`flow_diagram`'s text at its font size."""
    _, height = _flow_layout(flow, reasons, max_reasons)
    return width, height / 72 + 0.3


@styled
def flow_diagram(
    flow: pd.DataFrame,
    reasons: pd.DataFrame | None = None,
    *,
    ax: Axes | None = None,
    max_reasons: int = 6,
) -> Axes:
    """CONSORT-style flow diagram from :func:`rehabstats.metrics.flow.flow_counts`.

    The main boxes run down the left (enrolled → started → completed the window → returned to
    running → relapsed); the exits between them sit on the right (never started; withdrew
    during the window, with the most frequent reasons; still within the window; not returned).
    Each box shows the overall n and the n per group. Size the figure with
    :func:`flow_diagram_size` so that the text fits its boxes.
    """
    layout, height = _flow_layout(flow, reasons, max_reasons)
    if ax is None:
        ax = new_axes(flow_diagram_size(flow, reasons, max_reasons=max_reasons))
    ax.set_axis_off()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, height)
    main_x, main_w = 1.0, 40.0
    side_x, side_w = 52.0, 47.0
    trunk = main_x + main_w / 2

    def box(x: float, top: float, w: float, text: list[str], *, main: bool) -> float:
        h = len(text) * _LINE_PT + _PAD_PT - 4
        ax.add_patch(
            FancyBboxPatch(
                (x, top - h), w, h, boxstyle="round,pad=0,rounding_size=2",
                fc="#EEF4FA" if main else "#F7F7F7",
                ec=OKABE_ITO["blue"] if main else "#8A8A8A", lw=1.1, mutation_aspect=height / 100,
            )
        )  # fmt: skip
        ax.text(x + w / 2, top - h / 2, "\n".join(text), ha="center", va="center",
                fontsize=8.5, linespacing=1.3)  # fmt: skip
        return h

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.0,
                                "shrinkA": 0, "shrinkB": 0})  # fmt: skip

    y = height - 2
    previous_bottom = None
    for _step, main, exits in layout:
        if previous_bottom is not None:
            arrow(trunk, previous_bottom, trunk, y)
        h = box(main_x, y, main_w, main, main=True)
        bottom = y - h
        y = bottom - (10 if exits else 26)
        for _, text in exits:
            eh = box(side_x, y, side_w, text, main=False)
            ax.plot([trunk, side_x], [y - eh / 2, y - eh / 2], color="#555555", lw=1.0)
            arrow(side_x - 3, y - eh / 2, side_x, y - eh / 2)
            y -= eh + 10
        if exits:
            y -= 8
        previous_bottom = bottom
    return ax


def legend_patches(states: Sequence[str]) -> list[Patch]:
    """Legend handles for stage states (for figures that share one legend)."""
    return [Patch(color=STAGE_COLORS[s], label=STATE_LABELS[s]) for s in states]
