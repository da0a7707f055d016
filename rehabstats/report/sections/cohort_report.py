"""Sections of the cohort report only: results at a glance, Table 1, the pain model, VISA-A,
stage occupancy, protocol fidelity and exercise quality, and the return to running (a trial or
research cohort compared by a column)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from rehabstats.constants import OVERALL
from rehabstats.report import html, plots
from rehabstats.report.analysis import Analysis
from rehabstats.report.disclosure import WITHHELD
from rehabstats.report.format import (
    fmt_ci,
    fmt_count,
    fmt_count_pct,
    fmt_num,
    fmt_p,
    fmt_pct,
    format_table_one,
    group_label,
)
from rehabstats.report.html import Block
from rehabstats.report.sections.common import (
    by_group_table,
    pct,
    section,
    summary_block,
)
from rehabstats.stats.summaries import group_summary

__all__ = [
    "at_a_glance",
    "checkpoint_fidelity",
    "pain_model",
    "return_to_running",
    "stage_occupancy",
    "table_one",
    "visa_a",
]


@section
def at_a_glance(analysis: Analysis) -> Block:
    """Key results per group in one table (the numbers a reader looks for first)."""
    a = analysis
    d = a.disclosure
    pm = a.participants
    summary = group_summary(
        pm, by=a.group_by,
        continuous=["adherence_sessions", "visa_a_change_12"],
        binary=["withdrawn", "adherent", "visa_a_responder_12", "reached_stage_4", "relapsed"],
        confidence=a.config.confidence_level,
    )  # fmt: skip
    summary = d.group_summary(summary)

    def stage4(shown: pd.DataFrame) -> pd.DataFrame:
        columns = ["reached_by_week_12", "reached_by_week_12_ci_low", "reached_by_week_12_ci_high"]
        return shown[shown["stage"] == 4].set_index("group")[columns]

    km, km_all = stage4(a.km_summary_shown), stage4(a.km_summary_overall_shown)
    rates = a.relapse_rates_shown.set_index("group")
    ci = f"{a.config.confidence_level:.0%} CI"
    weeks = a.config.window_weeks
    rows: dict[str, dict[str, str]] = {}

    def cell(g: str, outcome: str) -> pd.Series:
        return summary[(summary["group"] == g) & (summary["outcome"] == outcome)].iloc[0]

    for g in dict.fromkeys(summary["group"]):
        sizes = int((pm["group"] == g).sum()) if g != OVERALL else len(pm)
        r = {}
        w = cell(g, "withdrawn")
        r["Withdrawn"] = fmt_count_pct(w["count"], pct(w["proportion"]), 0)
        adh = cell(g, "adherence_sessions")
        r[f"Session adherence, weeks 1-{weeks}, mean ({ci})"] = (
            f"{fmt_pct(adh['mean'])} ({fmt_ci(adh['ci_low'], adh['ci_high'], 0, percent=True)})"
        )
        ad = cell(g, "adherent")
        r[f"Adherent (≥ {a.config.adherent_threshold:.0%} of sessions)"] = fmt_count_pct(
            ad["count"], pct(ad["proportion"]), 0
        )
        k = (km_all if g == OVERALL else km).reindex([g]).iloc[0]
        low, high = k["reached_by_week_12_ci_low"], k["reached_by_week_12_ci_high"]
        r[f"Reached stage 4 by week {weeks}, Kaplan-Meier ({ci})"] = (
            f"{fmt_pct(k['reached_by_week_12'])} ({fmt_ci(low, high, 0, percent=True)})"
        )
        v = cell(g, "visa_a_change_12")
        r[f"VISA-A change at 12 weeks, mean ({ci}), points"] = (
            f"{fmt_num(v['mean'])} ({fmt_ci(v['ci_low'], v['ci_high'])})"
        )
        rs = cell(g, "visa_a_responder_12")
        r[f"VISA-A responders (change ≥ {a.config.visa_a_mcid:g})"] = (
            fmt_count_pct(rs["count"], pct(rs["proportion"]), 0) + f" of {fmt_count(rs['n'])}"
        )
        if g in rates.index:
            rr = rates.loc[g]
            r[f"Relapse rate per 1,000 person-weeks ({ci})"] = (
                f"{fmt_num(rr['rate_per_1000_pw'])} ({fmt_ci(rr['ci_low'], rr['ci_high'])})"
            )
        rows[f"{group_label(g)} (n = {d.count(sizes)})"] = r
    frame = pd.DataFrame(rows)
    frame.index.name = "outcome"
    if a.by is None:
        frame = frame.iloc[:, :1]
    caption = (
        "Each row is defined in the appendix. Percentages are of participants with the outcome "
        "known; the stage-4 proportion accounts for follow-up that ended before week 12. "
        "Intervals of adherence (0-100%) and of the VISA-A change (−100 to 100 points) are "
        "logit-transformed t intervals on the quantity's range (the logit method of "
        "R survey::svyciprop), so they stay within it; the relapse rate's is exact (Garwood)."
    )
    count_rows = [k for k in frame.index
                  if k.startswith(("Withdrawn", "Adherent", "VISA-A responders"))]  # fmt: skip
    return Block(
        html.table(frame, name="at_a_glance", left=[], count_rows=count_rows),
        html.caption(caption),
        name="at_a_glance",
        frames={"summary": summary},
    )


@section
def table_one(analysis: Analysis) -> Block:
    """Table 1: baseline characteristics by group, with standardised mean differences."""
    a = analysis
    summary, smd = a.table_one_shown
    frame = format_table_one(summary, smd)
    stat = frame.index.get_level_values(1)
    count_rows = frame.index[stat.str.endswith("n (%)") | (stat == "missing, n")
                             | (frame.index.get_level_values(0) == "Participants")]  # fmt: skip
    caption = (
        "Mean (SD) for age, body mass and VISA-A; median [Q1, Q3] for morning pain (a bounded "
        "scale); n (%) of participants with a value. SMD: standardised mean difference between "
        "groups (categorical variables: Yang & Dalton's multinomial SMD"
        + ("; largest pairwise SMD across the groups" if len(a.groups) > 2 else "")
        + "). |SMD| < 0.1 is conventionally taken as balance. Missing values are counted, "
        "not imputed."
    )
    title = (f"Baseline characteristics by {a.group_title.lower()}" if a.by
             else "Baseline characteristics")  # fmt: skip
    return Block(
        html.table(frame, name="table_one", caption=title, count_rows=list(count_rows)),
        html.caption(caption),
        name="table_one",
        frames={"summary": summary, "smd": smd},
    )


# ---- pain model ----------------------------------------------------------------------------

_VARIANCE_TERMS = ("var_intercept", "var_slope", "cov_intercept_slope", "var_residual")
"""Rows of the pain model's table that are variance components (pain.pain_model)."""

_TERM_LABELS = {
    "Intercept": "Mean morning pain in week 1{ref}, NRS",
    "t": "Change in morning pain per week{ref}, NRS",
    "var_intercept": "Between-participant variance of week-1 pain, NRS²",
    "var_slope": "Between-participant variance of the weekly change, (NRS/week)²",
    "cov_intercept_slope": "Covariance of week-1 pain and weekly change",
    "var_residual": "Residual variance, NRS²",
}


def _term_label(term: str, ref: str | None) -> str:
    suffix = f" ({ref}, the reference)" if ref else ""
    if term in _TERM_LABELS:
        return _TERM_LABELS[term].format(ref=suffix)
    if term.startswith("t:group[T.") and term.endswith("]"):
        return f"Difference in weekly change: {term[10:-1]} vs {ref}, NRS/week"
    if term.startswith("group[T.") and term.endswith("]"):
        return f"Difference in week-1 pain: {term[8:-1]} vs {ref}, NRS"
    return term


@section
def pain_model(analysis: Analysis) -> Block:
    """The linear mixed model of weekly morning pain: estimates, df, CI, p and model notes."""
    a = analysis
    d = a.disclosure
    model = a.pain_model
    attrs = dict(model.attrs)
    ref = a.groups[0] if a.by and len(a.groups) > 1 else None
    listed = attrs.get("notes")  # one by one, Note objects kept (pain.pain_model)
    if listed is None:  # plain text: note_text treats its small numbers as counts
        listed = sorted({n for n in model["note"].dropna().astype("str") if n})
    notes = [d.note_text(n) for n in listed]
    if model.empty or model["model"].iloc[0] == "none":
        why = "; ".join(notes) or "no data"
        return Block(html.caption(f"The pain model could not be fitted: {why}"),
                     name="pain_model")  # fmt: skip
    is_variance = model["term"].isin(list(_VARIANCE_TERMS))  # a dropped fixed effect: NaN
    fixed, variance = model[~is_variance], model[is_variance]
    conf = a.config.confidence_level
    rows = [
        {
            "term": _term_label(r.term, ref),
            "estimate": fmt_num(r.estimate, 2),
            "df": fmt_num(r.df, 1),
            f"{conf:.0%} CI": fmt_ci(r.ci_low, r.ci_high, 2),
            "p": r.p_value if isinstance(r.p_value, str) else fmt_p(r.p_value),
        }
        for r in fixed.itertuples()
    ]
    rows += [
        {"term": _term_label(r.term, ref), "estimate": fmt_num(r.estimate, 3),
         "df": "", f"{conf:.0%} CI": "", "p": ""}
        for r in variance.itertuples()
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    kind = model["model"].iloc[0]
    converged = bool(model["converged"].iloc[0])
    info = (
        "Linear mixed model fitted by REML (lme4's criterion): pain ~ t"
        + (" × group" if ref else "")
        + " + (1 + t | participant)" * (kind == "random_slope")
        + " + (1 | participant)" * (kind != "random_slope")
        + f", t = week − 1. Model reported: {kind.replace('_', ' ')}; "
        + ("converged" if converged else "NOT converged: interpret with caution")
        + (f"; {d.count(attrs['n_observations'])} participant-weeks from "
           f"{d.count(attrs['n_participants'])} participants" if "n_observations" in attrs
           else "")
        + (f"; REML log-likelihood {attrs['reml_loglik']:.2f}" if "reml_loglik" in attrs
           else "")
        + ". Confidence intervals and p-values of the fixed effects use t distributions with "
        "Satterthwaite degrees of freedom (df), as R's lmerTest."
    )  # fmt: skip
    return Block(
        html.table(frame, name="pain_model", caption="Pain trajectory model: fixed effects "
                   "(CIs and p-values from t distributions with Satterthwaite degrees of "
                   "freedom, df) and variance components", index=False, left=["term"]),
        html.caption(info),
        html.notes(notes, "Model notes"),
        name="pain_model",
        frames={"model": model},
    )  # fmt: skip


# ---- VISA-A --------------------------------------------------------------------------------


@section
def visa_a(analysis: Analysis) -> Block:
    """VISA-A at baseline and 12 weeks, change and responders, with group comparisons."""
    a = analysis
    c = a.config
    rows = [
        ("VISA-A at baseline, mean (SD), points", "visa_a_baseline", "mean"),
        ("VISA-A at week 12, mean (SD), points", "visa_a_week12", "mean"),
        ("Change baseline to week 12, mean (SD), points", "visa_a_change_12", "mean"),
        (f"Responders (change ≥ {c.visa_a_mcid:g} points), n (%)", "visa_a_responder_12",
         "count"),
    ]  # fmt: skip
    frame, summary = by_group_table(a, rows)
    fig, ax = html.subplots(7.5, 4.2)
    change = summary[summary["outcome"] == "visa_a_change_12"]  # n as the table shows it
    shown_n = {str(g): n for g, n in zip(change["group"], change["n"], strict=True)}
    plots.visa_change(a.participants, hue=a.group_by, ax=ax, mcid=c.visa_a_mcid,
                      counts=shown_n)  # fmt: skip
    parts = [
        html.table(
            frame,
            name="visa_a",
            caption="VISA-A (0-100, higher is better)",
            count_rows=frame.attrs["count_rows"],
        ),
        html.figure(
            fig,
            alt="VISA-A change from baseline to week 12 by group",
            caption="Change in VISA-A from baseline to week 12 for participants with both "
            "visits: boxes show the quartiles, points the participants; the dashed line is "
            "the responder threshold.",
        ),
    ]
    frames = {"summary": summary}
    if a.visa_a_comparisons:
        shown, left_out = a.disclosure.comparisons(a.visa_a_comparisons, summary)
        if left_out:
            parts.append(html.caption(
                "Comparisons involving a group with a count below "
                f"{a.disclosure.threshold} (participants, responders or non-responders) are "
                "not shown."
            ))  # fmt: skip
        comparisons = pd.concat(list(shown.values()), ignore_index=True)
        frames["comparisons"] = comparisons
        parts.append(html.table(_format_comparisons(comparisons, c.confidence_level),
                                name="visa_a_comparisons",
                                caption="Group comparisons (pingouin, statsmodels)", index=False,
                                left=["outcome", "comparison", "test"]))  # fmt: skip
        parts.append(html.caption(
            f"Reference group: {a.groups[0]}. Change: Welch's t-test (unequal variances) with "
            "the mean difference (Welch interval, limited to the −200 to 200 points a "
            "difference of changes can take) and Hedges' g"
            + (", after a Welch ANOVA across all groups" if len(a.groups) > 2 else "")
            + "; responders: Pearson's chi-squared test (Cramér's V) and the risk difference "
            "with Newcombe's hybrid score interval. p-values are not adjusted for "
            "multiplicity; read the intervals."
        ))  # fmt: skip
    return Block(*parts, name="visa_a", frames=frames)


def _format_comparisons(comp: pd.DataFrame, confidence: float) -> pd.DataFrame:
    labels = {"visa_a_change_12": "VISA-A change, points",
              "visa_a_responder_12": "Responders"}  # fmt: skip
    rows = []
    for r in comp.itertuples():
        if r.estimate_name == "risk difference":
            est = f"{fmt_num(100 * r.estimate, 1)} pp" if pd.notna(r.estimate) else "–"
            ci = fmt_ci(100 * r.ci_low, 100 * r.ci_high, 1) if pd.notna(r.ci_low) else "–"
        else:
            est = fmt_num(r.estimate, 1) if r.estimate_name else ""
            ci = fmt_ci(r.ci_low, r.ci_high, 1) if r.estimate_name else ""
        stat = ""
        if pd.notna(r.statistic):
            sym = {"Welch t-test": "t", "Welch ANOVA": "F", "chi-squared test": "χ²"}.get(
                r.test, ""
            )
            stat = f"{sym} = {fmt_num(r.statistic, 2)}, df = {fmt_num(r.dof, 1)}"
        es = ""
        if pd.notna(r.effect_size):
            es = f"{r.effect_size_name} {fmt_num(r.effect_size, 2)}"
            if pd.notna(r.es_ci_low):
                es += f" ({fmt_ci(r.es_ci_low, r.es_ci_high, 2)})"
        rows.append({
            "outcome": labels.get(r.outcome, r.outcome),
            "comparison": r.comparison,
            "test": r.test or "",
            "statistic": stat,
            "p": r.p_value if isinstance(r.p_value, str) else fmt_p(r.p_value),
            "difference": f"{r.estimate_name}: {est}" if r.estimate_name else "",
            f"{confidence:.0%} CI": ci,
            "effect size (CI)": es,
        })  # fmt: skip
    return pd.DataFrame(rows)


# ---- stages --------------------------------------------------------------------------------


@section
def stage_occupancy(analysis: Analysis) -> Block:
    """Where participants are at the end of each week of the window (stacked bars)."""
    a = analysis
    occ = a.occupancy_shown
    groups = sorted(occ["group"].astype("str").unique())
    ncols = min(3, len(groups))
    nrows = int(np.ceil(len(groups) / ncols))
    fig, axes = html.subplots(3.0 * ncols + 2.0, 3.1 * nrows + 0.4, nrows, ncols, sharey=True,
                              squeeze=False)  # fmt: skip
    axes = axes.ravel()
    for i, (g, ax) in enumerate(zip(groups, axes, strict=False)):
        plots.stage_occupancy(occ, group=g, ax=ax, legend=False)
        ax.set_xlabel("")
        if i % ncols:
            ax.set_ylabel("")
    for ax in axes[len(groups) :]:
        ax.set_axis_off()
    order = ["stage_4", "stage_3", "stage_2", "stage_1", "not_started", "withdrawn"]
    handles: list[Any] = plots.legend_patches(order)
    if (occ["state"] == WITHHELD).any():  # merged by the disclosure (external reports)
        handles.append(
            Patch(color=plots.STAGE_COLORS.get(WITHHELD, "#999"),
                  label=f"withheld (a state with fewer than {a.disclosure.threshold})")
        )  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", frameon=False,
               fontsize=8.5)  # fmt: skip
    fig.supxlabel("Week since enrolment (week 1 = days 0-6)", fontsize=9.5)
    return Block(
        html.figure(
            fig,
            alt="Stage occupancy by week and group",
            caption="State at the end of each week (day 7w − 1) of the remodelling window; the "
            "numbers above the bars are participants observed that week (those whose "
            "follow-up ended earlier without withdrawal are left out).",
        ),
        name="stage_occupancy",
        frames={"occupancy": occ},
    )


@section
def checkpoint_fidelity(analysis: Analysis) -> Block:
    """Protocol fidelity: the stage-4 checkpoint, insertional surface, regressions, stopping,
    and exercise quality (tempo of the lowering, back-to-back heavy days)."""
    a = analysis
    c = a.config
    pm = a.participants
    reached = pm["reached_stage_4"].fillna(False).astype(bool)
    insertional = pm["tendinopathy_type"].astype("str") == "insertional"
    heavy = min(c.rest_day_stages)
    reached_heavy = (pm[f"reached_stage_{heavy}"].fillna(False).astype(bool) if heavy > 1
                     else pd.Series(True, index=pm.index))  # fmt: skip
    data = pm.assign(
        checkpoint_first=(~pm["progressed_without_checkpoint"].astype(bool)).where(reached),
        without_checkpoint=pm["progressed_without_checkpoint"].astype(bool).where(reached),
        step_deviation=pm["insertional_step_deviation"].astype(bool).where(insertional),
        any_regression=pm["regressions"] > 0,
        any_back_to_back=(pm["back_to_back_days"] > 0).where(reached_heavy),
    )
    stages = "/".join(str(s) for s in sorted(c.rest_day_stages))
    rows = [
        ("Reached stage 4, n (%)", "reached_stage_4", "count"),
        ("Passed the checkpoint before stage 4, n (% of those reaching it)", "checkpoint_first",
         "count"),
        ("Reached stage 4 without a passed checkpoint, n (%)", "without_checkpoint", "count"),
        ("Insertional: stage-2 eccentrics off a step, n (% of insertional)", "step_deviation",
         "count"),
        ("Any regression to a lower stage, n (%)", "any_regression", "count"),
        ("Stopped loading before week 11, n (% of those followed to day 83)", "stopped_early",
         "count"),
        (f"Exercise quality: lowering under {c.min_lowering_s:g} s, % of logged stage 2-3 "
         "sessions, mean (SD)", "fast_tempo_rate", "mean_pct"),
        (f"Exercise quality: back-to-back heavy days (stage {stages}), n (% of those reaching "
         f"stage {heavy})", "any_back_to_back", "count"),
    ]  # fmt: skip
    frame, summary = by_group_table(a, rows, frame=data)
    logged = int(pm["tempo_sessions_known"].fillna(0).sum())
    tempo = (
        f"Tempo: completed stage 2-3 sessions of weeks 1-{c.window_weeks} with the lowering "
        f"time logged; a session is rushed when the lowering took less than "
        f'{c.min_lowering_s:g} s per repetition ("three seconds down is a minimum"); each '
        "participant's share of rushed sessions is averaged over those with a session logged."
        if logged
        else "Tempo: no lowering time is logged in this cohort (sessions.lowering_s), so the "
        "rushed-lowering row has no value."
    )
    return summary_block(
        "checkpoint_fidelity",
        frame,
        summary,
        "Protocol fidelity and exercise quality",
        html.caption(
            f"Checkpoint: an involved-side single-leg isometric hold at ≥ "
            f"{c.checkpoint_load_ratio:g}× body weight for ≥ {c.checkpoint_hold_s:g} s with "
            f"pain ≤ {c.checkpoint_pain_max:g}/10 and no flare the next morning, on or before "
            "the day of the first stage-4 session. Insertional tendinopathy does its "
            "eccentrics on flat ground. Stopped early: last completed session before day "
            f"{c.stopped_early_day}. {tempo} Heavy days: days with a completed stage "
            f"{stages} session, which belong on non-consecutive days; back to back: a heavy "
            "day following a heavy day."
        ),
    )


# ---- return to running ---------------------------------------------------------------------


@section
def return_to_running(analysis: Analysis) -> Block:
    """Return to running: readiness (the return-to-sport criteria), running load (weekly
    volume, the ACWR) and relapse after load spikes."""
    a = analysis
    c = a.config
    pm = a.participants
    runner = pm["first_run_day"].notna()
    returned = pm["at_risk_start_day"].notna()
    if not runner.any() and not returned.any():
        return Block(html.caption(
            "No run (table running) and no return to running or sport (events) is recorded "
            "within follow-up in this cohort: the return to running is not reported."
        ), name="return_to_running")  # fmt: skip
    tests = " and ".join(t.replace("_", " ") for t in c.rts_tests)
    data = pm.assign(
        returned=returned,
        criteria_met=pm["rts_criteria_day"].notna(),
        ran=runner,
        any_acwr_spike=(pm["acwr_spike_days"] > 0).astype("boolean").where(
            pm["acwr_max"].notna()),
        any_volume_spike=(pm["volume_spike_weeks"] > 0).astype("boolean").where(runner),
        any_running_pain=(pm["running_pain_days"] > 0).astype("boolean").where(runner),
    )  # fmt: skip
    rows = [
        ("Returned to running or sport, n (%)", "returned", "count"),
        (f"Return-to-sport criteria met (LSI ≥ {c.rts_lsi_min:g}% in {tests}), n (%)",
         "criteria_met", "count"),
        ("Returned before meeting the criteria, n (% of those returning)",
         "returned_before_criteria", "count"),
    ]  # fmt: skip
    if runner.any():
        rows += [
            ("Logged a run, n (%)", "ran", "count"),
            ("Days with a run, median [Q1, Q3]", "run_days", "median_int"),
            ("Largest ACWR, median [Q1, Q3]", "acwr_max", "median"),
            (f"Any ACWR spike (> {c.acwr_spike:g}), n (% of runners with an ACWR)",
             "any_acwr_spike", "count"),
            (f"Any week > {c.weekly_increase_max:.0%} above the previous, n (% of runners)",
             "any_volume_spike", "count"),
            (f"Any run with pain > {c.pain_limit:g}/10, n (% of runners)", "any_running_pain",
             "count"),
        ]  # fmt: skip
    frame, summary = by_group_table(a, rows, frame=data)
    parts: list[str] = [
        html.table(frame, name="return_to_running", caption="Return to running and readiness",
                   count_rows=frame.attrs["count_rows"]),
        html.caption(
            f"Return-to-sport criteria: the first day on which the latest limb symmetry index "
            f"(involved / uninvolved × 100) of every test ({tests}) is at least "
            f"{c.rts_lsi_min:g}% (a value borrowed from ACL practice: set the protocol's own). "
            "Returned before meeting them: the first return to running or sport came before "
            "that day, or the criteria were never met by then."
        ),
    ]  # fmt: skip
    frames: dict[str, pd.DataFrame] = {"summary": summary}
    if runner.any():
        parts += _running_load_parts(a, frames)
    else:
        parts.append(html.caption(
            "No run is recorded within follow-up (table running): weekly running volume, the "
            "acute:chronic workload ratio and relapse after load spikes are not reported."
        ))  # fmt: skip
    return Block(*parts, name="return_to_running", frames=frames)


def _running_load_parts(a: Analysis, frames: dict[str, pd.DataFrame]) -> list[str]:
    """The figures of weekly volume and of the ACWR, and the relapse after spikes."""
    c = a.config
    d = a.disclosure
    parts: list[str] = []
    volume = a.running_volume_shown
    frames["volume"] = volume
    if len(volume):
        fig, ax = html.subplots(9.0, 3.8)
        plots.running_volume(volume, ax=ax)
        parts.append(html.figure(
            fig,
            alt="Weekly running minutes by week since the first run",
            caption="Running minutes per week since the first run: median (line) and "
            "quartiles (band) of the runners followed through the whole week (weeks without "
            "a run count as 0); the return should build up gradually, without sudden jumps."
            + (f" Weeks with fewer than {d.threshold} runners are not drawn." if d.external
               else ""),
        ))  # fmt: skip
    hist, withheld = a.acwr_distribution_shown
    frames["acwr"] = hist
    if len(hist):
        fig, ax = html.subplots(9.0, 3.8)
        plots.acwr_distribution(hist, spike=c.acwr_spike, ax=ax)
        parts.append(html.figure(
            fig,
            alt="Distribution of the daily acute:chronic workload ratio",
            caption="Daily acute:chronic workload ratio of running minutes (exponentially "
            f"weighted, {c.acwr_acute_days}-day acute and {c.acwr_chronic_days}-day chronic "
            "averages; Williams et al. 2017), from the day the chronic average is defined "
            f"({c.acwr_chronic_days - 1} days after the first run) to the last run (after "
            "it both averages decay and the ratio falls towards 0): share of runner-days in "
            "bins of 0.1; the dashed line is the spike threshold. "
            "ACWR thresholds are descriptive conventions, not validated injury cut-offs "
            "(Impellizzeri et al. 2020; Lolli et al. 2019): read them as a description of how "
            "the load was built up, not as a risk line."
            + (f" Not drawn (fewer than {d.threshold} runners with an ACWR): "
               f"{', '.join(withheld)}." if withheld else ""),
        ))  # fmt: skip
    else:
        parts.append(html.caption(
            f"No ACWR is defined yet: it needs {c.acwr_chronic_days} days of running history"
            + (f" (or fewer than {d.threshold} runners have one)" if withheld else "")
            + "."
        ))  # fmt: skip
    parts += _relapse_after_spikes(a, frames)
    return parts


def _relapse_after_spikes(a: Analysis, frames: dict[str, pd.DataFrame]) -> list[str]:
    """The relapse rate after ACWR spikes and otherwise, and their ratio."""
    c = a.config
    conf = c.confidence_level
    table = a.relapse_acwr_shown
    frames["relapse_acwr"] = table
    raw = a.relapse_acwr
    if not (raw["exposed_person_weeks"] + raw["unexposed_person_weeks"]).gt(0).any():
        return [html.caption("No person-time at risk of relapse (no return to running or "
                             "sport): relapse after load spikes is not estimated.")]  # fmt: skip
    whole = None if a.by else "participants"
    rates = [{
        "group": group_label(r.group, whole=whole),
        "relapses after a spike": fmt_count(r.exposed_relapses),
        "person-weeks after a spike": fmt_num(r.exposed_person_weeks, 0),
        "rate after a spike": fmt_num(r.exposed_rate_per_1000_pw, 1),
        "relapses otherwise": fmt_count(r.unexposed_relapses),
        "person-weeks otherwise": fmt_num(r.unexposed_person_weeks, 0),
        "rate otherwise": fmt_num(r.unexposed_rate_per_1000_pw, 1),
    } for r in table.itertuples()]  # fmt: skip
    ratios = [{
        "group": group_label(r.group, whole=whole),
        "rate ratio": fmt_num(r.rate_ratio, 2),
        f"{conf:.0%} CI (exact)": fmt_ci(r.ci_low, r.ci_high, 2),
        "p": r.p_value if isinstance(r.p_value, str) else fmt_p(r.p_value),
    } for r in table.itertuples()]  # fmt: skip
    # two tables rather than one of ten columns, which does not fit a printed page
    return [
        html.table(pd.DataFrame(rates), name="relapse_acwr",
                   caption="Relapse after an ACWR spike and otherwise (rates per 1,000 "
                           "person-weeks)",
                   index=False, left=["group"],
                   counts=["relapses after a spike", "relapses otherwise"]),
        html.table(pd.DataFrame(ratios), name="relapse_acwr_ratio",
                   caption="Rate ratio of relapse, after a spike / otherwise",
                   index=False, left=["group"]),
        html.caption(
            "Person-time at risk of relapse (from the first return to running or sport) split "
            f"by exposure: a day is after a spike when a day with ACWR > {c.acwr_spike:g} lies "
            f"in the {c.spike_window_days} days before it; a relapse counts in the state of "
            "its own day. Rate ratio: after a spike / otherwise, with the exact conditional "
            "interval and test (as R poisson.test). An association in observational data: "
            "runners who spike may differ in other ways, and the ACWR threshold is a "
            "descriptive convention."
        ),
    ]  # fmt: skip
