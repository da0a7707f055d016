"""Sections of the clinic audit only: the dashboard against targets, who needs review now,
stage timelines, and the audit's settings (a clinic auditing its service by site)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rehabstats.constants import OVERALL
from rehabstats.metrics.review import reason_labels, stuck_weeks, under_care
from rehabstats.report import html, plots
from rehabstats.report.analysis import Analysis
from rehabstats.report.format import (
    fmt_ci,
    fmt_count,
    fmt_num,
    fmt_pct,
    fmt_setting,
    group_label,
)
from rehabstats.report.html import Block
from rehabstats.report.sections.common import section
from rehabstats.report.specs import SWIMMER_LIMIT

__all__ = ["audit_dashboard", "audit_settings", "review_list", "swimmer"]


def _estimate(r: Any) -> tuple[str, str, str]:
    """An audit row's estimate, its interval and its target, as shown."""
    if r.unit == "proportion":
        value, ci = fmt_pct(r.value), fmt_ci(r.ci_low, r.ci_high, 0, percent=True)
        target = f"{r.target:.0%}"
    else:
        value, ci, target = fmt_num(r.value, 1), fmt_ci(r.ci_low, r.ci_high, 1), f"{r.target:g}"
    sign = "≥" if r.direction == "at_least" else "≤"
    return value, ci, f"{sign} {target}"


@section
def audit_dashboard(analysis: Analysis) -> Block:
    """The service against its targets: headline tiles, a bullet chart per metric, the table."""
    a = analysis
    audit, plotted = a.audit_shown
    tiles = []
    for r in audit[audit["site"] == OVERALL].itertuples():
        shown, ci, target = _estimate(r)
        state = ("withheld" if isinstance(r.met, str) else
                 "unknown" if pd.isna(r.met) else ("met" if bool(r.met) else "missed"))  # fmt: skip
        css = {"met": "rs-met", "missed": "rs-missed"}.get(state, "")
        tiles.append(
            f'<div class="rs-kpi {css}"><div class="rs-kpi-label">{html.esc(r.label)}</div>'
            f'<div class="rs-kpi-value">{html.esc(shown)}</div>'
            f'<div class="rs-kpi-unit">{html.esc(r.unit_label)}</div>'
            f'<div class="rs-kpi-detail">target {html.esc(target)}: '
            f"<strong>{html.esc(state)}</strong>"
            f" · CI {html.esc(ci)} · n = {html.esc(fmt_count(r.n))}</div></div>"
        )
    metrics = list(dict.fromkeys(audit["metric"]))
    n_sites = audit["site"].nunique()
    nrows = int(np.ceil(len(metrics) / 2))
    fig, axes = html.subplots(11.0, (0.32 * n_sites + 1.1) * nrows + 0.4, nrows, 2,
                              squeeze=False)  # fmt: skip
    axes = axes.ravel()
    for metric, ax in zip(metrics, axes, strict=False):
        plots.audit_bullet(plotted, metric=metric, ax=ax)
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    cells: dict[str, dict[str, str]] = {}
    marks: dict[str, dict[str, bool | None]] = {}
    for r in audit.itertuples():
        value, ci, target = _estimate(r)
        known = not isinstance(r.met, str) and not pd.isna(r.met)
        mark = ("✓" if bool(r.met) else "✗") if known else ""
        unit = " per 1,000 person-weeks" if r.unit == "rate" else ""
        row = f"{r.label}{unit} (target {target})"
        site = group_label(r.site, whole="sites")
        cells.setdefault(row, {})[site] = (
            f'{html.esc(value)} {mark}<br><span class="rs-sub">{html.esc(ci)} · n = '
            f"{html.esc(fmt_count(r.n))}</span>"
        )
        marks.setdefault(row, {})[site] = bool(r.met) if known else None
    frame = pd.DataFrame(cells).T
    met = pd.DataFrame(marks).T.reindex(index=frame.index, columns=frame.columns)

    def colour(styler: Any) -> Any:
        css = met.map(lambda m: "color: #D55E00; font-weight: 600" if m is False else (
            "color: #00704F" if m is True else ""))  # fmt: skip
        return styler.apply(lambda _: css, axis=None)

    return Block(
        f'<div class="rs-kpis">{"".join(tiles)}</div>',
        html.figure(
            fig,
            alt="Audit metrics by site against targets",
            caption="Each site's estimate with its confidence interval against the target "
            "(dashed line; the shaded side meets it). Filled circles meet the target, open "
            "diamonds miss it.",
        ),
        html.table(
            frame,
            name="audit",
            caption="Audit metrics by site: estimate (✓ target met, ✗ missed), then its "
            f"{a.config.confidence_level:.0%} CI and n",
            styles=colour,
            counts=list(frame.columns),
            markup=list(frame.columns),  # value, mark, CI and n: escaped one by one above
        ),  # fmt: skip
        html.caption(
            "Targets are report parameters (target_*). Met/missed compares the point estimate "
            "with the target; with few participants the interval is wide, so read it before "
            "acting on a single site. Intervals: adherence, logit-transformed t interval (the "
            "logit method of R survey::svyciprop; within 0-100%); stage 4 by week 12, the "
            "Kaplan–Meier pointwise interval; responders, checkpoint fidelity and criteria met "
            "before the return, Wilson score interval; relapse rate, exact Poisson (Garwood)."
        ),
        name="audit_dashboard",
        frames={"audit": audit},
    )


@section
def review_list(analysis: Analysis) -> Block:
    """Participants who need attention at the data cut-off, with every reason."""
    a = analysis
    c = a.config
    d = a.disclosure
    rl = a.review_shown
    counts = ({label: d.count(rl[k].sum()) for k, label in reason_labels(c).items()} if len(rl)
              else {})  # fmt: skip
    n_care = int(under_care(a.timeline, c).sum())
    intro = (
        f"<p><strong>{html.esc(d.count(len(rl)))}</strong> "
        + html.esc(
            f"of {d.count(n_care)} participants under care (not withdrawn, follow-up ≤ "
            f"{c.review_horizon_weeks} weeks) need attention at the cut-off "
            f"{(c.cutoff or a.cohort.data_cutoff).date()}."
        )
        + "</p>"
    )
    parts = [intro]
    if counts:
        summary = pd.DataFrame({"participants": {k: str(v) for k, v in counts.items()}})
        summary.index.name = "reason"
        parts.append(html.table(summary, name="review_reasons", caption="Reasons, n",
                                counts=["participants"]))  # fmt: skip
    if len(rl):
        shown = pd.DataFrame({
            "participant": d.participant_label(rl["participant_id"]),
            "site": rl["site"],
            "arm": rl["arm"],
            "week": rl["week"].astype("int64").astype("str"),
            "stage": rl["stage"].map(lambda v: fmt_num(v, 0)),
            "reasons": rl["reasons"],
        })  # fmt: skip
        parts.append(html.table(shown, name="review", caption="Review list (most reasons first)",
                                index=False, left=["participant", "site", "arm", "reasons"],
                                wrap=["reasons"]))  # fmt: skip
    else:
        parts.append(html.caption("No participant meets a review rule at the cut-off."))
    stuck = stuck_weeks(c)
    parts.append(html.caption(
        f"Rules: morning pain rising ≥ {c.review_pain_rise_points:g} point (last 7 days vs the "
        f"7 before, each with ≥ {c.review_pain_min_records} ratings); a flare in the last "
        f"{c.review_flare_days} days; session adherence falling below "
        f"{c.adherent_threshold:.0%} (the last {c.review_recent_days} days below it and below "
        f"the {c.review_recent_days} days before); in stage 1/2/3 longer than "
        + "/".join(str(stuck[s]) for s in (1, 2, 3))
        + " weeks while loading; load stagnant; stage 4 without a passed checkpoint; "
        "insertional eccentrics off a step; stopped before week 11; a day with the running "
        f"ACWR above {c.acwr_spike:g} in the last {c.review_acwr_days} days; returned to "
        "running or sport before the return-to-sport criteria were met (limb symmetry ≥ "
        f"{c.rts_lsi_min:g}% in {' and '.join(t.replace('_', ' ') for t in c.rts_tests)}); "
        f"lowering under {c.min_lowering_s:g} s in ≥ {c.review_fast_tempo_rate:.0%} of the "
        f"stage 2-3 sessions of the last {c.review_recent_days} days (at least "
        f"{c.review_tempo_min_sessions} logged). Thresholds are listed in the appendix."
    ))  # fmt: skip
    return Block(*parts, name="review_list", frames={"review": rl})


@section
def swimmer(analysis: Analysis, *, limit: int | None = None) -> Block:
    """Stage timelines of the participants under care (review-list participants in bold).

    ``limit``: most participants drawn; default the report's ``swimmer_limit`` parameter
    (:data:`~rehabstats.report.specs.SWIMMER_LIMIT` without one).
    """
    a = analysis
    d = a.disclosure
    limit = limit or int(a.parameters.get("swimmer_limit", SWIMMER_LIMIT))
    pm = a.participants
    flagged = pm["participant_id"].isin(a.review["participant_id"]).to_numpy()
    # priority: on the review list, then the rest under care, then others; most recent first
    priority = pd.Series(2, index=pm.index)
    priority[under_care(pm, a.config).to_numpy()] = 1
    priority[flagged] = 0
    order = pm.assign(_p=priority).sort_values(["_p", "enrolled_on"], ascending=[True, False])
    chosen = order.head(limit).sort_values(["site", "enrolled_on"])
    n_flagged = int(flagged.sum())
    flagged_drawn = int((chosen["_p"] == 0).sum())
    chosen = chosen.assign(
        needs_review=chosen["participant_id"].isin(a.review["participant_id"]),
        label=d.participant_label(chosen["participant_id"]) + " · " + chosen["site"].astype(str),
    )
    if chosen.empty:
        return Block(html.caption("No participants to show."), name="swimmer")
    fig, ax = html.subplots(11.0, 0.19 * len(chosen) + 1.3)
    plots.swimmer(chosen, ax=ax, label="label",
                  max_days=float(chosen["follow_up_days"].max()))  # fmt: skip
    shown = len(chosen)
    more = len(pm) - shown
    hidden = f"; {d.count(more)} not shown (swimmer_limit = {limit})" if more > 0 else ""
    if flagged_drawn < n_flagged:
        review = (
            f" Only {d.count(flagged_drawn)} of the {d.count(n_flagged)} participants on the "
            f"review list are drawn: swimmer_limit = {limit} is smaller than the list (raise it "
            "to draw them all; the review list above names every one)."
        )
    else:
        review = (f" Every participant on the review list ({d.count(n_flagged)}) is drawn."
                  if n_flagged else " No participant is on the review list.")  # fmt: skip
    caption = (
        f"{d.count(shown)} participants by site and enrolment, chosen in this order: those on "
        f"the review list, the others under care, then the most recently enrolled others"
        f"{hidden}.{review} Bars: the stage entered first on each day range (later regressions "
        "are not drawn), ending at the cut-off or withdrawal. Bold labels are on the review list."
    )
    return Block(html.figure(fig, alt="Swimmer plot of stage timelines", caption=caption),
                 name="swimmer")  # fmt: skip


@section
def audit_settings(analysis: Analysis) -> Block:
    """The audit targets and the review-list thresholds used (the configuration's
    ``target_*`` and ``review_*`` keys)."""
    c = analysis.config
    targets = pd.DataFrame([
        {"target": "Session adherence, weeks 1-12 (mean)", "value": f"≥ {c.target_adherence:.0%}"},
        {"target": "Reached stage 4 by week 12", "value": f"≥ {c.target_stage4_by_week12:.0%}"},
        {"target": "VISA-A responders at 12 weeks", "value": f"≥ {c.target_responders:.0%}"},
        {"target": "Checkpoint passed before stage 4",
         "value": f"≥ {c.target_checkpoint_fidelity:.0%}"},
        {"target": "Relapse rate per 1,000 person-weeks",
         "value": f"≤ {c.target_relapse_rate:g}"},
        {"target": "Return-to-sport criteria met before the return to running or sport",
         "value": f"≥ {c.target_rts_readiness:.0%}"},
    ])  # fmt: skip
    review = c.to_frame()
    review = review[review["key"].str.startswith("review_")]
    stuck = ", ".join(f"stage {s}: {w}" for s, w in stuck_weeks(c).items())
    thresholds = pd.DataFrame({
        "setting": review["key"].str.removeprefix("review_").to_numpy(),
        "value": [stuck if k == "review_stuck_weeks" else fmt_setting(v)
                  for k, v in zip(review["key"], review["value"], strict=True)],
        "meaning": review["description"].to_numpy(),
    })  # fmt: skip
    return Block(
        html.table(targets, name="targets", caption="Audit targets", index=False,
                   left=["target"]),
        html.table(thresholds, name="thresholds", caption="Review-list thresholds",
                   index=False, left=["setting", "value", "meaning"], wrap=["meaning"]),
        name="audit_settings",
    )  # fmt: skip
