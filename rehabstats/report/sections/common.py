"""Sections both reports show, and what every section shares.

:func:`section` makes a report section of a function ``(analysis, ...) -> Block``: the notes of
what it used come with its block, and no participant id leaves in an external report.
The sections here: the header (title, cohort, provenance, data notes), the participant flow,
adherence, pain trajectories and monitoring, time to stage, relapse, and the appendices
(definitions, configuration). :func:`by_group_table` lays out a per-group summary for them and
the report-specific sections.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.constants import KEY_PACKAGES, OVERALL, package_versions
from rehabstats.metrics.flow import order_reasons
from rehabstats.report import html, plots
from rehabstats.report.analysis import RELAPSE_CURVE_WEEKS, Analysis
from rehabstats.report.disclosure import SECONDARY
from rehabstats.report.format import (
    fmt_ci,
    fmt_count,
    fmt_count_pct,
    fmt_mean_sd,
    fmt_median_iqr,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_setting,
    format_flow,
    group_label,
)
from rehabstats.report.html import Block
from rehabstats.report.specs import report_spec
from rehabstats.stats.summaries import group_summary, number_at_risk

__all__ = [
    "AUDIT_KEYS",
    "adherence",
    "by_group_table",
    "configuration",
    "definition_items",
    "definitions",
    "header",
    "pain_monitoring",
    "pain_trajectories",
    "participant_flow",
    "p_text",
    "pct",
    "relapse",
    "section",
    "summary_block",
    "time_to_stage",
    "versions",
]

AUDIT_KEYS: tuple[str, ...] = ("review_", "target_")
"""Prefixes of the configuration keys of the clinic audit (its review list and targets): listed
with the audit's settings, not in the configuration appendix."""


def section(fn: Callable[..., Block]) -> Callable[..., Block]:
    """Make a report section: the notes of what it used become a Notes box in its block.

    A report never shows a raw warning on stderr. What the section's tables were computed with
    (their notes, kept with them by the analysis) and what its own computations warn about
    (e.g. pingouin's low expected counts) is shown with the section, whichever cell computed a
    table first; the report's data notes are the header's, and every note is listed again in
    the appendix. In an external report, participant ids are replaced in every text of the
    block (a safety net behind the disclosure of each table).
    """

    @functools.wraps(fn)
    def wrapper(analysis: Analysis, *args: Any, **kwargs: Any) -> Block:
        with analysis.recording() as recorded:
            block = fn(analysis, *args, **kwargs)
        data_notes = analysis.data_notes
        d = analysis.disclosure
        own = [n for n in recorded.notes if n not in data_notes]
        if own:
            block.parts.append(html.notes([d.note_text(n) for n in own], "Notes"))
        block.parts = [p if p.startswith("<figure") else d.redact_html(p) for p in block.parts]
        return block

    return wrapper


def pct(proportion: object) -> object:
    """100 · a proportion; a suppression marker as it is."""
    return proportion if isinstance(proportion, str) else 100 * proportion  # type: ignore[operator]


def p_text(p: object) -> str:
    """A p-value in a sentence: ``p = 0.012``, ``p < 0.001``."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def versions() -> dict[str, str]:
    """Python's version and those of :data:`~rehabstats.constants.KEY_PACKAGES`."""
    return package_versions(KEY_PACKAGES)


def _parameter_table(a: Analysis) -> pd.DataFrame:
    """The report parameters as shown (paths withheld from an external report)."""
    return pd.DataFrame(
        [{"parameter": k, "value": fmt_setting(v)}
         for k, v in a.disclosure.parameters(a.parameters).items()]
    )  # fmt: skip


def by_group_table(
    analysis: Analysis,
    rows: Sequence[tuple[str, str, str]],
    *,
    frame: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of (label, column, kind) summarised per group, as shown.

    ``kind``: ``mean`` (mean (SD)), ``mean_pct`` (of a proportion, in %), ``median`` /
    ``median_int`` (median [Q1, Q3] with one / no decimal), ``count`` (n (%)). ``frame``: the
    participants with extra columns (default :attr:`Analysis.participants`). Returns the
    display table (one column per group, the whole cohort first) and the disclosed
    :func:`~rehabstats.stats.summaries.group_summary` behind it.
    """
    a = analysis
    data = a.participants if frame is None else frame
    continuous = [c for _, c, k in rows if k in ("mean", "median", "mean_pct", "median_int")]
    binary = [c for _, c, k in rows if k == "count"]
    summary = group_summary(data, by=a.group_by, continuous=continuous, binary=binary,
                            confidence=a.config.confidence_level)  # fmt: skip
    summary = a.disclosure.group_summary(summary)
    out: dict[str, dict[str, str]] = {}
    for g in dict.fromkeys(summary["group"]):
        part = summary[summary["group"] == g].set_index("outcome")
        n_group = len(data) if g == OVERALL else int((data["group"] == g).sum())
        col = f"{group_label(g)} (n = {a.disclosure.count(n_group)})"
        out[col] = {}
        for label, column, kind in rows:
            r = part.loc[column]
            if kind == "mean":
                text = fmt_mean_sd(r["mean"], r["sd"], 1)
            elif kind == "mean_pct":
                text = f"{fmt_pct(r['mean'])} ({fmt_pct(r['sd'])})"
            elif kind in ("median", "median_int"):
                d = 0 if kind == "median_int" else 1
                text = fmt_median_iqr(r["median"], r["q1"], r["q3"], d)
            else:
                text = fmt_count_pct(r["count"], pct(r["proportion"]), 0)
                if isinstance(r["n"], str) or r["n"] != n_group:
                    text += f" of {fmt_count(r['n'])}"
            out[col][label] = text
    frame_out = pd.DataFrame(out)
    frame_out.index.name = ""
    frame_out.attrs["count_rows"] = [label for label, _, kind in rows if kind == "count"]
    if a.by is None:
        frame_out = frame_out.iloc[:, :1]
    return frame_out, summary


def summary_block(
    name: str, frame: pd.DataFrame, summary: pd.DataFrame, title: str, *parts: str
) -> Block:
    """A section of one :func:`by_group_table` table, its caption and any other parts."""
    table = html.table(frame, name=name, caption=title, count_rows=frame.attrs["count_rows"])
    return Block(table, *parts, name=name, frames={"summary": summary})


# ---- header and provenance -----------------------------------------------------------------


def _privacy_banner(a: Analysis) -> str:
    d = a.disclosure
    if d.external:
        text = f"External — pseudonymised, small cells (<{d.threshold}) suppressed"
        detail = (
            f"Participant ids are replaced by keyed pseudonyms (ID-…); counts from 1 to "
            f"{d.threshold - 1} are shown as <{d.threshold}; * marks a value withheld "
            "because it derives from a small count or would let one be worked out from a "
            "total. Dates of enrolment are given by month only."
        )
        return (f'<p class="rs-audience rs-external"><strong>{html.esc(text)}</strong><br>'
                f'<span class="rs-sub">{html.esc(detail)}</span></p>')  # fmt: skip
    return ('<p class="rs-audience rs-internal"><strong>Internal — contains identifiers, do '
            "not share</strong></p>")  # fmt: skip


@section
def header(analysis: Analysis) -> Block:
    """Title, cohort, data cut-off, grouping, contents, the provenance block and the data notes."""
    a = analysis
    d = a.disclosure
    tl = a.timeline
    cohort = a.cohort
    fingerprint = cohort.fingerprint()
    cutoff = (a.config.cutoff or cohort.data_cutoff).date().isoformat()
    n = len(tl)
    sites = sorted(tl["site"].astype("str").unique())
    arms = sorted(tl["arm"].astype("str").unique())
    source = d.source(cohort.source, given=bool(a.parameters.get("data")), kind=cohort.source_kind)
    software = versions()
    shown_parameters = d.parameters(a.parameters)
    config_name = (
        f"file {shown_parameters['config_file']}" if a.parameters.get("config_file")
        else "defaults"
    )  # fmt: skip
    if a.config.preset_name:
        config_name += f" (preset {a.config.preset_name})"
    spec = report_spec(a.report)
    facts = [
        ("Cohort", source),
        ("Participants analysed", f"{d.count(n)} · {len(sites)} site{'s' * (len(sites) != 1)} · "
                                  f"{len(arms)} arm{'s' * (len(arms) != 1)}"),
        ("Enrolment", d.enrolment(tl["enrolled_on"])),
        ("Data cut-off", cutoff),
        ("Compared by", a.group_title if a.by else "not grouped"),
        ("Analysis configuration", config_name),
    ]  # fmt: skip
    facts_html = "".join(f"<div><dt>{html.esc(k)}</dt><dd>{html.esc(v)}</dd></div>"
                         for k, v in facts)  # fmt: skip
    vers = pd.DataFrame([{"package": k, "version": v} for k, v in software.items()])
    provenance_html = (
        '<details class="rs-provenance"><summary>Provenance: data fingerprint, parameters, '
        "software versions</summary>"
        f'<p>Data fingerprint (SHA-256 of the cohort tables): <span class="rs-mono">'
        f"{html.esc(fingerprint)}</span></p>"
        f"<p>Run at {html.esc(a.started_at)} (UTC) on {html.esc(platform.platform(terse=True))}; "
        f"rehabstats {html.esc(software['rehabstats'])}.</p>"
        '<div class="rs-grid">'
        + html.table(_parameter_table(a), name="provenance_parameters", caption="Parameters",
                     index=False, left=["parameter", "value"])
        + html.table(vers, name="provenance_versions", caption="Software", index=False,
                     left=["package", "version"])
        + "</div></details>"
    )  # fmt: skip
    subtitle = spec.description[0].upper() + spec.description[1:]
    body = (
        '<header class="rs-header">'
        f"<h1>{html.esc(a.title)}</h1>"
        f"{_privacy_banner(a)}"
        f'<p class="rs-subtitle">{html.esc(subtitle)}.</p>'
        f'<dl class="rs-facts">{facts_html}</dl>'
        f"{provenance_html}"
        '<nav class="rs-toc" data-rs-toc=""></nav>'
        "</header>"
    )
    provenance = {
        "report": a.report,
        "title": a.title,
        "fingerprint": fingerprint,
        "data_cutoff": cutoff,
        "source": source,
        "source_kind": cohort.source_kind,
        "participants": n,
        "by": a.by,
        "parameters": shown_parameters,
        "config": a.config.to_dict(),
        "versions": software,
        "run_at": a.started_at,
        "audience": a.audience,
        "suppression_threshold": d.threshold if d.external else None,
    }
    notes = html.notes([d.note_text(n) for n in a.data_notes], "Data notes")
    return Block(body, notes, name="header", provenance=provenance)


# ---- participants --------------------------------------------------------------------------


@section
def participant_flow(analysis: Analysis, *, diagram: bool = True) -> Block:
    """CONSORT-style flow: diagram, counts by group and withdrawal reasons."""
    a = analysis
    flow = a.flow_shown
    counts, reasons = a.withdrawal_reasons_shown
    parts = []
    if diagram:
        fig, ax = html.subplots(*plots.flow_diagram_size(flow, reasons))
        plots.flow_diagram(flow, reasons, ax=ax)
        parts.append(
            html.figure(
                fig,
                alt="Participant flow diagram",
                caption="Participant flow at the data cut-off. Group counts in each box are "
                + ("by " + a.group_title.lower() + "." if a.by else "overall."),
            )
        )
    wide = format_flow(flow)
    parts.append(html.table(wide, name="flow", caption="Participant flow, n (% of enrolled)",
                            counts=list(wide.columns)))  # fmt: skip
    if len(reasons):
        numeric = counts.pivot_table(index=["reason", "when"], columns="group", values="n",
                                     aggfunc="sum", fill_value=0)  # fmt: skip
        cols = [OVERALL, *[c for c in numeric.columns if c != OVERALL]]
        numeric = order_reasons(numeric[[c for c in cols if c in numeric.columns]])
        shown = reasons.assign(n=reasons["n"].map(fmt_count))
        r = shown.pivot(index=["reason", "when"], columns="group", values="n")
        r = r.reindex(index=numeric.index, columns=numeric.columns).fillna("0")
        r.columns = [group_label(c) for c in r.columns]
        parts.append(html.table(r, name="withdrawal_reasons", caption="Withdrawals by reason, n",
                                counts=list(r.columns)))  # fmt: skip
    else:
        parts.append(html.caption("No participant withdrew before the data cut-off."))
    parts.append(
        html.caption(
            f"Completed the window: follow-up reached day {a.config.window_end_day} (end of "
            f"week {a.config.window_weeks}). Started: at least one completed session in the "
            "window. Returned: a return-to-running or return-to-sport event; relapsed: the "
            "first relapse after it (definitions in the appendix)."
        )
    )
    return Block(*parts, name="participant_flow", frames={"flow": flow, "reasons": reasons})


# ---- adherence and pain --------------------------------------------------------------------


@section
def adherence(analysis: Analysis) -> Block:
    """Session and volume adherence by group, and mean weekly adherence over the window."""
    a = analysis
    rows = [
        ("Sessions scheduled, median [Q1, Q3]", "sessions_scheduled", "median_int"),
        ("Session adherence, mean (SD)", "adherence_sessions", "mean_pct"),
        ("Volume adherence, mean (SD)", "adherence_volume", "mean_pct"),
        (f"Adherent (≥ {a.config.adherent_threshold:.0%} of sessions), n (%)", "adherent",
         "count"),
        (f"Load stagnant ≥ {a.config.stagnation_weeks} weeks (stages 2-3), n (%)",
         "load_stagnant", "count"),
    ]  # fmt: skip
    frame, summary = by_group_table(a, rows)
    fig, ax = html.subplots(9.0, 3.8)
    plots.adherence_by_week(a.weekly, hue=a.group_by, ax=ax,
                            threshold=a.config.adherent_threshold,
                            confidence=a.config.confidence_level)  # fmt: skip
    return summary_block(
        "adherence",
        frame,
        summary,
        "Adherence in weeks 1-12",
        html.caption(
            "Session adherence (the primary definition, CERT item 16) = completed / scheduled "
            "sessions; a session counts as completed with at least one set done. Volume "
            "adherence = completed / prescribed sets × repetitions, each session capped at its "
            "prescription. Only follow-up before withdrawal or the cut-off counts."
        ),
        html.figure(
            fig,
            alt="Mean weekly session adherence by group",
            caption=f"Mean weekly session adherence with its {a.config.confidence_level:.0%} "
            "confidence band (logit-transformed t interval, within 0-100%); participants "
            "contribute the weeks they were followed in.",
        ),
    )


@section
def pain_trajectories(analysis: Analysis) -> Block:
    """Weekly morning pain: individual trajectories (faint) and group means with CI."""
    a = analysis
    weekly = a.weekly.dropna(subset=["pain_morning_mean"])
    fig, ax = html.subplots(9.0, 4.2)
    plots.pain_trajectories(weekly, hue=a.group_by, ax=ax,
                            confidence=a.config.confidence_level,
                            pain_limit=a.config.pain_limit)  # fmt: skip
    n = weekly["participant_id"].nunique()
    return Block(
        html.figure(
            fig,
            alt="Weekly mean morning pain per participant and group",
            caption=f"Mean morning pain (NRS 0-10, on waking) per week for "
            f"{a.disclosure.count(n)} participants with "
            "diary data: thin lines are individuals, thick lines the group means with their "
            f"{a.config.confidence_level:.0%} confidence bands (logit-transformed t intervals "
            "on the 0-10 scale, so a band stays within 0-10).",
        ),
        name="pain_trajectories",
    )


@section
def pain_monitoring(analysis: Analysis) -> Block:
    """Pain-monitoring rule violations, flares and rising weeks by group."""
    a = analysis
    c = a.config
    rows = [
        ("Morning pain week 1, median [Q1, Q3], NRS", "pain_morning_week1", "median"),
        (f"Morning pain week {c.window_weeks}, median [Q1, Q3], NRS", "pain_morning_week12",
         "median"),
        ("Change week 1 to 12, mean (SD), NRS", "pain_change", "mean"),
        ("Session days, median [Q1, Q3]", "session_days", "median_int"),
        ("Session days violating a rule, % per participant, median [Q1, Q3]",
         "pmm_violation_pct", "median"),
        ("Flares per participant, median [Q1, Q3]", "flares", "median_int"),
        ("Any flare, n (%)", "any_flare", "count"),
        ("Weeks with rising pain, median [Q1, Q3]", "weeks_rising", "median_int"),
    ]  # fmt: skip
    pm = a.participants.assign(
        pmm_violation_pct=100 * a.participants["pmm_violation_rate"],
        any_flare=(a.participants["flares"] > 0).where(a.participants["session_days"] > 0),
    )
    frame, summary = by_group_table(a, rows, frame=pm)
    return summary_block(
        "pain_monitoring",
        frame,
        summary,
        "Pain monitoring in weeks 1-12",
        html.caption(
            f"Pain-monitoring model (Silbernagel 2007) on each session day: pain during or "
            f"after exercise above {c.pain_limit:g}/10, or next-morning pain higher than that "
            f"morning's (+{c.settle_tolerance:g}), violates a rule; a rule without data is "
            f"unknown, not violated. A flare: next-morning pain ≥ that morning's + "
            f"{c.flare_delta:g}. A rising week: mean morning pain above the previous week's, "
            f"both with ≥ {c.rising_min_records} ratings."
        ),
    )


# ---- stages --------------------------------------------------------------------------------

_KM_AXES = {2: (56, 7), 3: (112, 14), 4: (182, 28)}
"""Time axis of each stage's KM plot: (last day shown, days between at-risk counts)."""


@section
def time_to_stage(analysis: Analysis, *, stages: Sequence[int] = (2, 3, 4)) -> Block:
    """Kaplan–Meier time to each stage with number-at-risk tables, and the medians."""
    a = analysis
    d = a.disclosure
    km = a.km
    pm = a.participants
    window = 7 * a.config.window_weeks
    width = 3.5 * len(stages) + 0.5 if len(stages) > 1 else 7.5
    fig, axes = html.subplots(width, 4.4 + 0.22 * len(a.groups), 1, len(stages),
                              sharey=True, squeeze=False)  # fmt: skip
    fig.get_layout_engine().set(wspace=0.08)  # room between the panels' at-risk tables
    axes = axes.ravel()
    for i, (stage, ax) in enumerate(zip(stages, axes, strict=True)):
        horizon, step = _KM_AXES.get(stage, (max(182, window), 28))
        times = np.arange(0, horizon + 1, step)
        entry = pd.to_numeric(pm[f"days_to_stage_{stage}"], errors="coerce")
        durations = pd.DataFrame({"group": pm["group"],
                                  "duration": entry.fillna(pm["follow_up_days"])})  # fmt: skip
        at_risk = d.at_risk(number_at_risk(durations, times))
        until = d.km_until(km[km["stage"] == stage], durations)
        plots.km_curves(km, stage=stage, ax=ax, max_days=horizon, at_risk=at_risk,
                        legend=i == 0, risk_labels=i == 0, until=until)  # fmt: skip
        if window <= horizon:
            ax.axvline(a.config.window_weeks, color="#444444", ls=":", lw=1)
        if i:
            ax.set_ylabel("")
    conf = a.config.confidence_level
    s = a.km_summary_shown
    s = s[s["stage"].isin(stages)]
    rows = []
    for r in s.itertuples():
        rows.append({
            "stage": f"Stage {r.stage}",
            "group": group_label(r.group, whole="participants"),
            "n": fmt_count(r.n),
            "entered": fmt_count(r.events),
            "median days": fmt_num(r.median_days, 0),
            f"{conf:.0%} CI (median)": fmt_ci(r.median_ci_low, r.median_ci_high, 0),
            f"reached by week {a.config.window_weeks}": fmt_pct(r.reached_by_week_12),
            f"{conf:.0%} CI (reached)": fmt_ci(r.reached_by_week_12_ci_low,
                                               r.reached_by_week_12_ci_high, 0, percent=True),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return Block(
        html.figure(
            fig,
            alt="Kaplan-Meier curves of the time to stages 2, 3 and 4",
            caption="Proportion who have reached each stage (1 − Kaplan–Meier S(t)) with "
            f"{conf:.0%} pointwise confidence bands ({a.config.km_ci_transform} transform, "
            "Greenwood variance; within 0-100%); follow-up ending without entry is "
            f"censored. The dotted line marks the end of week {a.config.window_weeks}; the "
            "numbers under each plot are participants still at risk (not yet in the stage, "
            "still followed) at the times shown."
            + (
                f" Curves end where fewer than {d.threshold} remain at risk; a group of fewer "
                f"than {d.threshold} is not drawn."
                if d.external
                else ""
            ),
        ),
        html.table(
            frame,
            name="time_to_stage",
            caption="Time to stage entry (Kaplan-Meier)",
            index=False,
            left=["stage", "group"],
            counts=["n", "entered"],
        ),  # fmt: skip
        name="time_to_stage",
        frames={"km": km, "summary": s},
    )


# ---- relapse -------------------------------------------------------------------------------


@section
def relapse(analysis: Analysis, *, rate_ratio: bool = True) -> Block:
    """Relapse rates with exact CIs, cumulative incidence, and stopped-early vs completers."""
    a = analysis
    c = a.config
    conf = c.confidence_level
    rates = a.relapse_rates_shown
    whole = None if a.by else "participants"  # beside the groups, or alone
    rows = [{
        "group": group_label(r.group, whole=whole),
        "at risk": fmt_count(r.n_at_risk),
        "relapses": fmt_count(r.relapses),
        "person-weeks": fmt_num(r.person_weeks, 0),
        "rate per 1000 person-weeks": fmt_num(r.rate_per_1000_pw, 1),
        f"{conf:.0%} CI (exact)": fmt_ci(r.ci_low, r.ci_high, 1),
    } for r in rates.itertuples()]  # fmt: skip
    inc, withheld_groups = a.relapse_incidence_shown
    fig, ax = html.subplots(8.5, 3.8)
    plots.cumulative_incidence(inc[inc["week"] <= RELAPSE_CURVE_WEEKS], ax=ax,
                               markers_at=c.incidence_weeks)  # fmt: skip
    at = inc[inc["week"].isin(c.incidence_weeks)]
    wide = at.assign(value=at["cumulative_incidence"].map(lambda v: fmt_pct(v, 1)))
    wide = wide.pivot(index="group", columns="week", values="value")
    wide.columns = [f"week {w}" for w in wide.columns]
    if withheld_groups:  # no curve (nor row values) of a group whose counts are withheld
        extra = pd.DataFrame(SECONDARY, index=withheld_groups, columns=wide.columns)
        wide = pd.concat([wide, extra])
    wide.index = [group_label(g, whole="participants") for g in wide.index]
    parts = [
        html.table(
            pd.DataFrame(rows),
            name="relapse_rates",
            caption="Relapse after return to running or sport",
            index=False,
            left=["group"],
            counts=["at risk", "relapses"],
        ),  # fmt: skip
        html.figure(
            fig,
            alt="Cumulative incidence of relapse",
            caption="Cumulative incidence of relapse since the return to running or sport "
            "(Aalen–Johansen, withdrawal as a competing event); dots mark the weeks tabulated "
            "below.",
        ),
        html.table(wide, name="relapse_incidence", caption="Cumulative incidence of relapse"),
    ]
    frames = {"rates": rates, "incidence": inc}
    if rate_ratio and len(a.rate_ratio):
        r = a.rate_ratio_shown.iloc[0]
        text = (
            f"Participants who stopped loading before day {c.stopped_early_day} relapsed at "
            f"{fmt_num(r['rate_per_1000_pw_stopped_early'], 1)} per 1000 "
            f"person-weeks ({fmt_count(r['relapses_stopped_early'])} relapses in "
            f"{fmt_count(r['n_stopped_early'])} at risk), completers at "
            f"{fmt_num(r['rate_per_1000_pw_completers'], 1)} "
            f"({fmt_count(r['relapses_completers'])} in "
            f"{fmt_count(r['n_completers'])}): rate ratio "
            f"{fmt_num(r['rate_ratio'], 2)} ({conf:.0%} CI "
            f"{fmt_ci(r['ci_low'], r['ci_high'], 2)}, exact), "
            f"{p_text(r['p_value']) if not isinstance(r['p_value'], str) else 'p *'}."
        )
        parts.append(f"<p>{html.esc(text)}</p>")
        frames["rate_ratio"] = a.rate_ratio
    rules = ", ".join(c.relapse_rules)
    parts.append(html.caption(
        f"At risk from the first return to running or sport. Relapse: the earliest of a "
        f"recorded relapse, {c.relapse_days} consecutive days of morning pain above "
        f"{c.pain_limit:g}/10, or a session back in stage ≤ {c.relapse_regression_stage} "
        f"(rules applied: {rules}). Rates: relapses per 1,000 person-weeks at risk, exact "
        "Poisson (Garwood) intervals."
    ))  # fmt: skip
    return Block(*parts, name="relapse", frames=frames)


# ---- appendix ------------------------------------------------------------------------------


def definition_items(c: AnalysisConfig) -> list[tuple[str, str]]:
    """Every definition a report uses, as (term, definition), with ``c``'s thresholds."""
    w = c.window_weeks
    return [
        ("Day, week", "day = calendar days from enrolment (day 0); week = day // 7 + 1 (week 1 = "
         f"days 0-6). Remodelling window: weeks 1-{w} (days 0-{7 * w - 1})."),
        ("Data cut-off, follow-up", "The analysis date (a parameter; by default the latest date "
         "in the data, never today's date). Follow-up ends at withdrawal or the cut-off, "
         "whichever is first; later data are not used."),
        ("Session adherence", "Completed / scheduled sessions in the window within follow-up; a "
         f"session is completed with ≥ 1 set. Adherent: ≥ {c.adherent_threshold:.0%}."),
        ("Volume adherence", "Σ min(completed sets × reps, prescribed sets × reps) / Σ "
         "prescribed sets × reps."),
        ("Load stagnation", "Longest run of consecutive stage 2-3 weeks with a completed "
         "session whose highest load does not exceed the highest earlier weekly load; "
         f"stagnant when ≥ {c.stagnation_weeks} weeks."),
        ("Pain-monitoring rules", "On each session day: pain during or after exercise > "
         f"{c.pain_limit:g}/10; next-morning pain > that morning's + {c.settle_tolerance:g} "
         "(not settled). A rule without data is unknown. Violation rate = violating days / "
         "days with a rule known."),
        ("Flare", f"Next-morning pain ≥ that morning's + {c.flare_delta:g} after a session day."),
        ("Rising week", "Mean morning pain above the previous calendar week's, both weeks with "
         f"≥ {c.rising_min_records} morning ratings."),
        ("Pain trajectory model", "Weekly mean morning pain ~ t × group + (1 + t | "
         "participant), t = week − 1, linear mixed model fitted by REML (lme4's criterion); "
         "random intercept only when the random-slope model does not converge or is singular "
         "(said in the model notes). Confidence intervals and p-values of the fixed effects "
         "use t distributions with Satterthwaite degrees of freedom (as R's lmerTest)."),
        ("VISA-A", "Sum of items 1-7 and the one answered item-8 branch (0-100); no pro-rating. "
         f"Baseline: closest to day 0 within days {c.baseline_window_days[0]} to "
         f"{c.baseline_window_days[1]}; week N: closest to day 7N within ±"
         f"{c.visit_window_days} days (ties: the earlier). Responder: change at 12 weeks ≥ "
         f"{c.visa_a_mcid:g} points."),
        ("Stage entry", "Day of the first scheduled session with stage ≥ s. Time to stage: "
         "Kaplan-Meier, censored at the end of follow-up; reached by week "
         f"{w} = 1 − S({7 * w - 1}). Median: the first time S ≤ 0.5, its limits the first "
         f"times the pointwise limits ({c.km_ci_transform} transform) are ≤ 0.5, as R "
         "survfit's summary table."),
        ("Checkpoint", f"Involved-side single-leg isometric hold with (body mass + external "
         f"load) / body mass ≥ {c.checkpoint_load_ratio:g}, ≥ {c.checkpoint_hold_s:g} s, pain "
         f"≤ {c.checkpoint_pain_max:g}/10 (missing pain = not passed) and no flare the next "
         "morning. Progressed without checkpoint: stage 4 with no pass on or before its "
         "first day."),
        ("Insertional step deviation", "Insertional tendinopathy with a stage-2 session on a "
         "step (eccentrics belong on flat ground)."),
        ("Stopped early", f"Last completed session before day {c.stopped_early_day} while "
         f"follow-up reaches day {c.stopped_early_min_follow_up_days}."),
        ("Stage occupancy", "State at the end of week w (day 7w − 1): not started, stage 1-4 or "
         "withdrawn; participants whose follow-up ended earlier without withdrawal are left "
         "out of that week."),
        ("Relapse", "At risk from the first return to running or sport. The earliest after it "
         f"of: a recorded relapse; {c.relapse_days} consecutive days of morning pain > "
         f"{c.pain_limit:g}; a session in stage ≤ {c.relapse_regression_stage}. Rules applied: "
         f"{', '.join(c.relapse_rules)}. Rate per 1000 person-weeks with exact (Garwood) "
         "limits; cumulative incidence by Aalen-Johansen with withdrawal competing."),
        ("Exercise quality", f"Tempo: completed stage 2-3 sessions of weeks 1-{w} with the "
         "lowering time logged; rushed when the lowering took less than "
         f"{c.min_lowering_s:g} s per repetition; the rate is rushed / logged sessions. "
         "Back-to-back heavy days: days with a completed stage "
         f"{'/'.join(str(s) for s in sorted(c.rest_day_stages))} session whose previous "
         "calendar day was one too."),
        ("Running load (ACWR)", "Daily load = minutes run (0 without a run) from the first "
         "run to the end of follow-up; exponentially weighted acute and chronic averages "
         f"(spans {c.acwr_acute_days} and {c.acwr_chronic_days} days, λ = 2 / (N + 1), both 0 "
         "the day before the first run); ACWR = acute / chronic, defined from "
         f"{c.acwr_chronic_days - 1} days after the first run where the chronic average is "
         f"above 0. Spike day: ACWR > {c.acwr_spike:g} (a descriptive convention, not an "
         "injury cut-off). Volume spike week: minutes more than "
         f"{c.weekly_increase_max:.0%} above the previous week's (which had a run)."),
        ("Relapse after load spikes", "Person-time at risk of relapse split by exposure: a day "
         f"is exposed when a spike day lies in the {c.spike_window_days} days before it; a "
         "relapse counts in the state of its own day; rate ratio exposed / unexposed with the "
         "exact conditional interval (R poisson.test)."),
        ("Return-to-sport criteria", "The first day on which the latest limb symmetry index "
         f"of every test of {', '.join(c.rts_tests)} is ≥ {c.rts_lsi_min:g}%. Returned before "
         "the criteria: the first return to running or sport came before that day, or the "
         "criteria were never met by then."),
        ("Confidence intervals", f"{c.confidence_level:.0%} throughout. Means of bounded "
         "quantities (adherence 0-100%, NRS 0-10, VISA-A 0-100 and its change −100 to 100): "
         "logit-transformed t interval on the quantity's range (the logit method of R "
         "survey::svyciprop), within the range; all values at one bound: the exact n-of-n "
         "limit. "
         "Proportions: Wilson score; differences of proportions: Newcombe's hybrid score; "
         "differences of means: Welch, limited to the range a difference can take."),
    ]  # fmt: skip


@section
def definitions(analysis: Analysis) -> Block:
    """Every definition used in the report, with this analysis' thresholds filled in."""
    items = "".join(f"<dt>{html.esc(k)}</dt><dd>{html.esc(v)}</dd>" for k, v in
                    definition_items(analysis.config))  # fmt: skip
    return Block(
        f'<dl class="rs-definitions">{items}</dl>',
        html.caption("The full definitions are in docs/metrics.md of rehabstats "
                     f"{versions()['rehabstats']}."),
        name="definitions",
    )  # fmt: skip


@section
def configuration(analysis: Analysis) -> Block:
    """The analysis configuration used (but the clinic audit's :data:`AUDIT_KEYS`, listed with
    its settings), the report parameters, and every data and model note of the report."""
    a = analysis
    cfg = a.config.to_frame()
    cfg = cfg[~cfg["key"].str.startswith(AUDIT_KEYS)].reset_index(drop=True)
    cfg["value"] = cfg["value"].map(fmt_setting)
    notes = html.notes([a.disclosure.note_text(n) for n in a.notes],
                       "Every data and model note of this report")  # fmt: skip
    return Block(
        html.table(cfg, name="configuration", caption="Analysis configuration", index=False,
                   left=["key", "value", "description"], wrap=["description"]),
        html.table(_parameter_table(a), name="parameters", caption="Report parameters",
                   index=False, left=["parameter", "value"]),
        notes,
        name="configuration",
        frames={"config": cfg},
    )  # fmt: skip
