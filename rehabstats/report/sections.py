"""Report sections: the one library call each notebook cell makes.

A report notebook is a ``parameters`` cell, ``analysis = sections.prepare(...)`` and then one
``sections.<name>(analysis)`` per cell. Each section returns a :class:`Block`, which displays as
HTML in JupyterLab and in the rendered report: headings are the notebook's markdown cells; a
block holds figures (PNG data URIs), styled tables (pandas Styler) and captions.

Computation stays in the metric modules and :mod:`rehabstats.report.tables` /
:mod:`rehabstats.metrics.review`; figures come from :mod:`rehabstats.report.plots`. What happens here is
presentation: choosing, labelling, rounding and arranging. Numbers stay in DataFrames until the
last step (:meth:`Analysis.disclosed` is where a later ``audience: external`` mode suppresses
small cells before anything is formatted).

For an ``external`` audience (:mod:`rehabstats.report.disclosure`) every table passes through
:meth:`Analysis.disclosed` (small counts shown as ``<5``, derived values and secondary cells as
``*``), participant ids are replaced by keyed pseudonyms (:meth:`Analysis.participant_label`),
data notes show their counts through the same rule and are redacted
(:meth:`Analysis.note_text`), dates of enrolment are coarsened to months, and the provenance
shows the data fingerprint instead of the data folder's path.

Every text from the data or the parameters is HTML-escaped where it lands: :func:`_table`
(cells, index and column labels, caption), :func:`_caption`, :func:`_figure`, :func:`_notes`,
:func:`_heading`, and :func:`_esc` where a section puts HTML together (docs/privacy.md).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import html
import io
import json
import platform
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.data.sources import describe_kind
from rehabstats.errors import Note, ParameterError
from rehabstats.metrics.review import REVIEW_REASONS, AuditTargets, ReviewThresholds
from rehabstats.report import disclosure as privacy
from rehabstats.report import plots, tables
from rehabstats.report.render import PROVENANCE_MIMETYPE, REPORTS, validate_parameters

__all__ = [
    "KEY_PACKAGES",
    "Analysis",
    "Block",
    "adherence",
    "at_a_glance",
    "audit_dashboard",
    "audit_settings",
    "checkpoint_fidelity",
    "configuration",
    "definitions",
    "demo_cohort",
    "header",
    "pain_model",
    "pain_monitoring",
    "pain_trajectories",
    "participant_flow",
    "prepare",
    "relapse",
    "review_list",
    "stage_occupancy",
    "swimmer",
    "table_one",
    "time_to_stage",
    "visa_a",
]

KEY_PACKAGES: tuple[str, ...] = (
    "rehabstats",
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "pingouin",
    "matplotlib",
    "seaborn",
    "papermill",
    "nbconvert",
    "ipykernel",
)
"""Packages whose versions the provenance block records."""

_PNG_DPI = 120
_CSS_DPI = 96  # a figure inch is shown as 96 CSS pixels, so PNGs stay sharp on dense screens


# ---- display blocks ------------------------------------------------------------------------


class Block:
    """A displayable report block: HTML parts (figures, tables, text) in order.

    Parameters
    ----------
    *parts : str
        HTML fragments (built by the helpers of this module, user text escaped).
    provenance : dict, optional
        Machine-readable provenance, emitted as an extra (non-displayed) mimetype.
    frames : dict, optional
        The numeric DataFrames behind the block's tables (for tests and later suppression).
    """

    def __init__(
        self,
        *parts: str,
        name: str = "",
        provenance: dict[str, Any] | None = None,
        frames: dict[str, pd.DataFrame] | None = None,
    ):
        self.parts = [p for p in parts if p]
        self.name = name
        self.provenance = provenance
        self.frames = frames or {}

    def _repr_html_(self) -> str:
        body = "\n".join(self.parts)
        # a suppression marker "<5" in a cell or text: a tag never starts with a digit
        body = _MARKER_LT.sub("&lt;", body)
        return f'<div class="rs-block" data-rs-section="{html.escape(self.name)}">{body}</div>'

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/html": self._repr_html_(), "text/plain": repr(self)}
        if self.provenance is not None:
            bundle[PROVENANCE_MIMETYPE] = json.loads(json.dumps(self.provenance, default=str))
        return bundle

    def __repr__(self) -> str:
        return f"<rehabstats report block {self.name!r}: {len(self.parts)} parts>"


_MARKER_LT = re.compile(r"<(?=\d)")


def _esc(value: object) -> str:
    """Text as HTML: ``&``, ``<``, ``>`` and both quotes escaped.

    Every text from the data (sites, arms, reasons, ids), the parameters (title) or the code is
    escaped where it lands in HTML: by :func:`_table`, :func:`_caption`, :func:`_figure`,
    :func:`_notes` and :func:`_heading`, or with this function where HTML is put together.
    """
    return html.escape(str(value))


def _caption(text: str) -> str:
    """A caption paragraph (``text`` is escaped)."""
    return f'<p class="rs-caption">{_esc(text)}</p>'


def _heading(text: str) -> str:
    return f"<h3>{_esc(text)}</h3>"


def _figure(fig: Figure, *, alt: str, caption: str = "") -> str:
    """A matplotlib figure as an inline PNG (data URI) with alt text and a caption (escaped)."""
    buf = io.BytesIO()
    with mpl.rc_context(plots.STYLE):  # texts made while drawing are literal too
        fig.savefig(
            buf, format="png", dpi=_PNG_DPI, bbox_inches="tight", facecolor="white",
            metadata={"Software": None},
        )  # fmt: skip
    png = buf.getvalue()
    width_px = int.from_bytes(png[16:20], "big")
    shown = round(width_px * _CSS_DPI / _PNG_DPI)
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return (
        f'<figure class="rs-figure"><img src="data:image/png;base64,{data}" alt="{_esc(alt)}" '
        f'width="{shown}">{cap}</figure>'
    )


def _subplots(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw: Any) -> Any:
    """A figure (not registered with pyplot) and its Axes, styled with :data:`plots.STYLE`.

    Returns (figure, axes) with axes as ``Figure.subplots`` returns them.
    """
    with mpl.rc_context(plots.STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, fig.subplots(nrows, ncols, **kw)


def _table(
    frame: pd.DataFrame,
    *,
    name: str,
    caption: str | None = None,
    index: bool = True,
    left: Sequence[str] = (),
    wrap: Sequence[str] = (),
    styles: Callable[[Any], Any] | None = None,
    counts: Sequence[Any] = (),
    count_rows: Sequence[Any] = (),
    markup: Sequence[Any] = (),
) -> str:
    """A formatted (string) DataFrame as a styled HTML table.

    Every cell, every index and column label (group names become column headers) and the
    caption are escaped here, the one place report tables are made; only the cells of the
    ``markup`` columns are shown as they are (HTML put together from escaped parts). Cells of
    the ``counts`` columns and of the ``count_rows`` rows (index labels) hold counts of
    participants or events; they get the class ``rs-count`` (what the privacy tests check).
    """
    frame = frame.copy()
    frame.index.names = [None] * frame.index.nlevels
    frame.columns.name = None
    styler = frame.style.set_uuid(name).set_table_attributes('class="rs-table"')
    styler = styler.format(_esc)
    markup = [c for c in markup if c in frame.columns]
    if markup:
        styler = styler.format(str, subset=markup)
    styler = styler.format_index(_esc, axis=0).format_index(_esc, axis=1)
    if caption:
        styler = styler.set_caption(_esc(caption))
    if not index:
        styler = styler.hide(axis="index")
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for col in left:
        if col in classes:
            classes[col] = "rs-left"
    for col in wrap:
        if col in classes:
            classes[col] = (classes[col] + " rs-wrap").str.strip()
    is_count = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for col in counts:
        if col in is_count:
            is_count[col] = True
    if len(count_rows):
        is_count.loc[frame.index.isin(list(count_rows))] = True
    classes = classes.mask(is_count, (classes + " rs-count").map(str.strip))
    styler = styler.set_td_classes(classes)
    if styles is not None:
        styler = styles(styler)
    return f'<div class="rs-table-wrap">{styler.to_html()}</div>'


def _notes(items: Sequence[str], title: str = "Notes") -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{_esc(i)}</li>" for i in items)
    return f'<div class="rs-notes"><strong>{_esc(title)}</strong><ul>{lis}</ul></div>'


def _p_text(p: object) -> str:
    text = tables.fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def section(fn: Callable[..., Block]) -> Callable[..., Block]:
    """Make a report section: warnings raised while it runs become a Notes box in its block.

    A report never shows a raw warning on stderr; what metric functions (through
    :meth:`Analysis.compute`) or statistics libraries (e.g. pingouin's low expected counts) warn
    about is shown with the section it concerns, and listed again in the appendix.
    """

    @functools.wraps(fn)
    def wrapper(analysis: Analysis, *args: Any, **kwargs: Any) -> Block:
        before = len(analysis.notes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            block = fn(analysis, *args, **kwargs)
        for w in caught:
            if issubclass(w.category, DeprecationWarning | FutureWarning):
                continue
            note = _message(w)
            if note not in analysis.notes:
                analysis.notes.append(note)
        new = analysis.notes[before:]
        if new and fn.__name__ != "header":
            block.parts.append(_notes([analysis.note_text(n) for n in new], "Notes"))
        if analysis.external:  # safety net: no identifier in any text of the block
            block.parts = [p if p.startswith("<figure") else analysis.redact_html(p)
                           for p in block.parts]  # fmt: skip
        return block

    return wrapper


def _message(w: warnings.WarningMessage) -> str:
    """A caught warning's text: the :class:`~rehabstats.errors.Note` it carries (its counts
    kept apart, for an external report) or its text."""
    message = w.message
    args = message.args if isinstance(message, Warning) else ()
    if len(args) == 1 and isinstance(args[0], Note):
        return args[0]
    return message if isinstance(message, Note) else str(message)


_PLAIN_NUMBER = re.compile(r"(?<![\w.,:/\-])\d+(?![\w:/\-]|[.,]\d)")
"""A whole number standing alone in a note's text: not part of a decimal, a date, a time, a
range or an identifier (what might be a count)."""


def _pct(proportion: object) -> object:
    """100 · a proportion; a suppression marker as it is."""
    return proportion if isinstance(proportion, str) else 100 * proportion  # type: ignore[operator]


def _disclosed_km_summary(a: Analysis, summary: pd.DataFrame) -> pd.DataFrame:
    """A ``time_to_stage_summary`` table as it may be shown (n and events are counts)."""
    derived = ["median_days", "median_ci_low", "median_ci_high", "reached_by_week_12"]
    return a.disclosed(summary, counts=["n", "events"],
                       derived={c: ["n", "events"] for c in derived if c in summary},
                       lines=[["stage"]], denominators={"events": "n"})  # fmt: skip


def _group_name(g: object) -> str:
    return "All participants" if str(g) in ("all", tables.OVERALL) else str(g)


# ---- the analysis --------------------------------------------------------------------------


def demo_cohort(n_participants: int = 500, *, seed: int = 0) -> Cohort:
    """The embedded demo cohort: :func:`rehabstats.data.simulate.simulate_cohort`, labelled."""
    from rehabstats.data.simulate import simulate_cohort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the simulator's deliberate data issues (see notes)
        cohort = simulate_cohort(n_participants, seed=seed)
    label = f"simulated demo cohort ({n_participants} participants, seed {seed})"
    return dataclasses.replace(cohort, source=label)


@dataclass(eq=False)
class Analysis:
    """Everything a report shows, computed once on first use and shared by its sections.

    Build with :func:`prepare`. Metric tables are cached properties, so a notebook computes each
    once however many sections use it. Warnings raised while computing are collected in
    ``notes`` (shown in the report) instead of being printed.
    """

    report: str
    cohort: Cohort
    config: AnalysisConfig
    by: str | None
    parameters: dict[str, Any]
    title: str
    audience: str = "internal"
    threshold: int = privacy.DEFAULT_THRESHOLD
    key: bytes | None = field(default=None, repr=False)
    targets: AuditTargets = field(default_factory=AuditTargets)
    thresholds: ReviewThresholds = field(default_factory=ReviewThresholds)
    notes: list[str] = field(default_factory=list)  # Note objects where a warning carried one
    started_at: str = ""

    # -- privacy (audience "external": rehabstats.report.disclosure) ------------------------------

    @property
    def external(self) -> bool:
        """The report leaves the team: pseudonyms and small-cell suppression."""
        return self.audience == "external"

    def disclosed(
        self,
        frame: pd.DataFrame,
        *,
        counts: Sequence[str] = (),
        derived: dict[str, Sequence[str]] | None = None,
        lines: Sequence[Sequence[str]] = (),
        margin: tuple[str, object] | None = None,
        relations: Sequence[privacy.Relation] = (),
        denominators: dict[str, str] | None = None,
    ) -> pd.DataFrame:
        """The numeric table as it may be shown to this report's audience.

        ``internal``: every cell, unchanged. ``external``:
        :func:`rehabstats.report.disclosure.suppress_counts` with this report's threshold (counts 1 to
        threshold − 1 as ``<5``; derived and secondary cells as ``*``).
        """
        if not self.external:
            return frame
        return privacy.suppress_counts(
            frame, count_columns=[c for c in counts if c in frame], derived=derived,
            threshold=self.threshold, lines=lines, margin=margin, relations=relations,
            denominators=denominators,
        )  # fmt: skip

    def disclosed_summary(self, summary: pd.DataFrame) -> pd.DataFrame:
        """A :func:`rehabstats.report.tables.group_summary` table as it may be shown.

        Counts n and count; groups add up to Overall per outcome; a count whose complement
        (n − count) is small is withheld; means, SDs, quantiles, proportions and CIs go with
        their counts.
        """
        stats = ["mean", "sd", "median", "q1", "q3", "proportion", "ci_low", "ci_high"]
        return self.disclosed(
            summary, counts=["n", "count"], derived={c: ["n", "count"] for c in stats},
            lines=[["outcome"]], margin=("group", tables.OVERALL), denominators={"count": "n"},
        )  # fmt: skip

    def count(self, n: object) -> str:
        """A single count as shown in text (``<5`` when small, in an external report)."""
        if isinstance(n, str):
            return n
        if pd.isna(n):  # type: ignore[call-overload]
            return "–"
        n = int(n)  # type: ignore[call-overload]
        if self.external and 1 <= n < self.threshold:
            return privacy.primary_marker(self.threshold)
        return str(n)

    def small(self, n: object) -> bool:
        """A group this small is not shown at all in an external report (n < threshold)."""
        return self.external and not isinstance(n, str) and int(n) < self.threshold  # type: ignore[call-overload]

    def participant_label(self, ids: pd.Series) -> pd.Series:
        """Participant ids as shown: the ids (internal) or keyed pseudonyms (external)."""
        if not self.external:
            return ids.astype("str")
        if self.key is None:
            raise ParameterError("an external report needs the pseudonym key")
        return privacy.pseudonymise(ids, key=self.key)

    @cached_property
    def _id_labels(self) -> dict[str, str]:
        ids = self.cohort.participants["participant_id"].astype("str")
        return dict(zip(ids, self.participant_label(ids), strict=True))

    def redact(self, text: str) -> str:
        """Text (data notes, warnings) with participant ids replaced by their labels."""
        if not self.external:
            return text
        return privacy.redact_ids(text, self._id_labels)

    @cached_property
    def _id_labels_html(self) -> dict[str, str]:
        return {html.escape(k): html.escape(v) for k, v in self._id_labels.items()}

    def redact_html(self, text: str) -> str:
        """HTML with participant ids (as escaped in it) replaced by their labels."""
        if not self.external:
            return text
        return privacy.redact_ids(text, self._id_labels_html)

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
                lambda m: privacy.SECONDARY if 1 <= int(m.group(0)) < self.threshold
                else m.group(0), str(note),
            )  # fmt: skip
        return self.redact(text)

    # -- computation -------------------------------------------------------------------------

    def compute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a metric function, collecting its warnings into ``notes``."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(*args, **kwargs)
        for w in caught:
            note = _message(w)  # several metrics repeat one data warning: shown once
            if issubclass(w.category, DeprecationWarning | FutureWarning):
                continue
            if note not in self.notes:
                self.notes.append(note)
        return result

    @property
    def window_days(self) -> int:
        return 7 * self.config.window_weeks - 1

    @cached_property
    def timeline(self) -> pd.DataFrame:
        from rehabstats.time.timeline import participant_timeline

        return self.compute(participant_timeline, self.cohort, self.config)

    @cached_property
    def participants(self) -> pd.DataFrame:
        """``participant_metrics`` with sex, age, body mass, enrolment, withdrawal and group."""
        from rehabstats.metrics.outputs import participant_metrics

        pm = self.compute(participant_metrics, self.cohort, config=self.config)
        tl = self.timeline
        extra = tl[["sex", "age_years", "body_mass_kg", "enrolled_on", "withdrawn_on"]]
        extra = extra.set_axis(extra.index.astype("str"))
        pm = pm.join(extra, on="participant_id")
        reasons = self.cohort.participants.set_index(
            self.cohort.participants["participant_id"].astype("str")
        )["withdrawal_reason"]
        pm["withdrawal_reason"] = reasons.reindex(pm["participant_id"]).to_numpy()
        pm["group"] = self._groups(pm)
        return pm

    def _groups(self, frame: pd.DataFrame) -> pd.Series:
        if self.by is None:
            return pd.Series("all", index=frame.index, dtype="str")
        if self.by in frame:
            return frame[self.by].astype("str")
        tl = self.timeline
        labels = tl[self.by].astype("str").set_axis(tl.index.astype("str"))
        return pd.Series(labels.reindex(frame["participant_id"].astype("str")).to_numpy(),
                         index=frame.index, dtype="str")  # fmt: skip

    @cached_property
    def weekly(self) -> pd.DataFrame:
        from rehabstats.metrics.outputs import weekly_metrics

        wm = self.compute(weekly_metrics, self.cohort, config=self.config)
        wm = wm.assign(participant_id=wm["participant_id"].astype("str"))
        groups = self.participants.set_index("participant_id")["group"]
        return wm.assign(group=groups.reindex(wm["participant_id"]).to_numpy())

    @cached_property
    def km(self) -> pd.DataFrame:
        from rehabstats.metrics.stages import time_to_stage

        return self.compute(time_to_stage, self.cohort, by=self.by, config=self.config)

    @cached_property
    def km_summary(self) -> pd.DataFrame:
        from rehabstats.metrics.stages import time_to_stage_summary

        return self.compute(time_to_stage_summary, self.cohort, by=self.by, config=self.config)

    @cached_property
    def km_summary_overall(self) -> pd.DataFrame:
        """``time_to_stage_summary`` of the whole cohort (group ``all``)."""
        from rehabstats.metrics.stages import time_to_stage_summary

        if self.by is None:
            return self.km_summary
        return self.compute(time_to_stage_summary, self.cohort, config=self.config)

    @cached_property
    def occupancy(self) -> pd.DataFrame:
        from rehabstats.metrics.stages import stage_occupancy

        return self.compute(stage_occupancy, self.cohort, by=self.by, config=self.config)

    @cached_property
    def relapse_rates(self) -> pd.DataFrame:
        """Rates per group, then the overall row (group ``all``) when grouped."""
        from rehabstats.metrics.relapse import relapse_rates

        parts = [self.compute(relapse_rates, self.cohort, by=self.by, config=self.config)]
        if self.by is not None:
            parts.append(self.compute(relapse_rates, self.cohort, config=self.config))
        return pd.concat(parts, ignore_index=True)

    @cached_property
    def relapse_incidence(self) -> pd.DataFrame:
        """Cumulative incidence weekly to week 52 (the configured weeks are among them)."""
        from rehabstats.metrics.relapse import relapse_incidence

        weeks = tuple(sorted(set(range(1, 53)) | set(self.config.incidence_weeks)))
        config = self.config.replace(incidence_weeks=weeks)
        return self.compute(relapse_incidence, self.cohort, by=self.by, config=config)

    @cached_property
    def rate_ratio(self) -> pd.DataFrame:
        from rehabstats.metrics.relapse import relapse_rate_ratio

        return self.compute(relapse_rate_ratio, self.cohort, config=self.config)

    @cached_property
    def pain_model(self) -> pd.DataFrame:
        from rehabstats.metrics.pain import pain_model

        return self.compute(pain_model, self.cohort, by=self.by, config=self.config)

    @cached_property
    def review(self) -> pd.DataFrame:
        from rehabstats.metrics.review import review_list

        return self.compute(
            review_list, self.cohort, config=self.config, thresholds=self.thresholds,
            participants=self.participants,
        )  # fmt: skip

    @cached_property
    def audit(self) -> pd.DataFrame:
        from rehabstats.metrics.relapse import relapse_rates
        from rehabstats.metrics.review import audit_summary
        from rehabstats.metrics.stages import time_to_stage

        by = self.by or "site"
        km = pd.concat(
            [
                self.compute(time_to_stage, self.cohort, by=by, config=self.config),
                self.compute(time_to_stage, self.cohort, config=self.config),
            ],
            ignore_index=True,
        )
        rates = pd.concat(
            [
                self.compute(relapse_rates, self.cohort, by=by, config=self.config),
                self.compute(relapse_rates, self.cohort, config=self.config),
            ],
            ignore_index=True,
        )
        return audit_summary(
            self.participants, km, rates, by=by, targets=self.targets,
            confidence=self.config.confidence_level, window_days=self.window_days,
        )  # fmt: skip

    @cached_property
    def km_summary_shown(self) -> pd.DataFrame:
        """``km_summary`` as it may be shown to this audience."""
        return _disclosed_km_summary(self, self.km_summary)

    @cached_property
    def relapse_rates_shown(self) -> pd.DataFrame:
        """``relapse_rates`` as it may be shown: at risk and relapses are counts; person-time,
        rates and limits go with them; the groups add up to the overall row."""
        return self.disclosed(
            self.relapse_rates, counts=["n_at_risk", "relapses"],
            derived={"person_weeks": ["n_at_risk"],
                     **{c: ["n_at_risk", "relapses"]
                        for c in ("rate_per_1000_pw", "ci_low", "ci_high")}},
            lines=[[]], margin=("group", "all"), denominators={"relapses": "n_at_risk"},
        )  # fmt: skip

    @property
    def groups(self) -> list[str]:
        return sorted(self.participants["group"].unique())

    @property
    def group_title(self) -> str:
        return {"arm": "Arm", "site": "Site", "tendinopathy_type": "Tendinopathy type",
                "sex": "Sex"}.get(self.by or "", "All participants")  # fmt: skip


def prepare(report: str, **parameters: Any) -> Analysis:
    """Validate a report's parameters, load (or simulate) the cohort, set up the analysis.

    Parameters
    ----------
    report : str
        ``cohort_report`` or ``clinic_audit``.
    **parameters
        The notebook's parameters (see :func:`rehabstats.report.render.report_parameters`); the same
        validation as :func:`rehabstats.render_report`, so a notebook run by hand with a bad
        value fails with the same message.

    Returns
    -------
    Analysis
    """
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    params = validate_parameters(report, parameters)
    spec = REPORTS[report]
    config = (
        AnalysisConfig.from_yaml(params["config_file"])
        if params["config_file"]
        else (AnalysisConfig())
    )
    notes: list[str] = []
    if params["data"] is None:
        cohort = demo_cohort(params["demo_participants"], seed=params["demo_seed"])
        if report == "clinic_audit" and params["data_cutoff"] is None:
            interim = cohort.participants["enrolled_on"].max() - pd.Timedelta(days=30)
            cohort = cohort.with_cutoff(interim.normalize())
            notes.append(
                Note(
                    "Demo: the simulated cohort is analysed at an interim cut-off ({cutoff}, "
                    "30 days before the last enrolment) so that the audit shows participants "
                    "still in the programme.",
                    cutoff=cohort.data_cutoff.date().isoformat(),
                )
            )
    else:
        from rehabstats.data.folder import load_cohort

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cohort = load_cohort(params["data"])
        notes.extend(_message(w) for w in caught)
    key = None
    if params["audience"] == "external":
        # the key comes from the environment (render_report passes it to the kernel) or the
        # key file; it is never a notebook parameter, so it is never written into a report
        key = privacy.privacy_key(params["pseudonym_key_file"])
    if params["data_cutoff"] is not None:
        config = config.replace(data_cutoff=params["data_cutoff"])
    if config.data_cutoff is not None:
        cohort = cohort.with_cutoff(config.data_cutoff)
    by: str | None
    if report == "clinic_audit":
        by = "site"
        if params["site"] is not None:
            sites = sorted(cohort.participants["site"].astype("str").unique())
            if params["site"] not in sites:
                raise ParameterError(
                    f"site {params['site']!r} is not in the data; sites: {', '.join(sites)}"
                )
            cohort = cohort.filter(site=params["site"])
        targets = AuditTargets(
            adherence=params["target_adherence"],
            stage4_by_week12=params["target_stage4_by_week12"],
            responders=params["target_responders"],
            checkpoint_fidelity=params["target_checkpoint_fidelity"],
            relapse_rate=params["target_relapse_rate"],
        )
    else:
        by = params["group"]
        targets = AuditTargets()
    analysis = Analysis(
        report=report,
        cohort=cohort,
        config=config,
        by=by,
        parameters=params,
        title=params["title"] or spec.title,
        audience=params["audience"],
        threshold=params["suppression_threshold"],
        key=key,
        targets=targets,
        notes=notes + list(cohort.warnings),
        started_at=started.isoformat().replace("+00:00", "Z"),
    )
    analysis.notes = list(dict.fromkeys(analysis.notes))  # shown by note_text (disclosure)
    return analysis


_WITHHELD = "withheld (external report)"
_PATH_PARAMETERS = ("data", "config_file", "pseudonym_key_file")


def _shown_parameters(a: Analysis) -> dict[str, Any]:
    """The report parameters as shown: paths withheld from an external report (a folder or file
    name can hold names or ids; the data are identified by their fingerprint instead)."""
    if not a.external:
        return dict(a.parameters)
    return {k: (_WITHHELD if k in _PATH_PARAMETERS and v is not None else v)
            for k, v in a.parameters.items()}  # fmt: skip


def _privacy_banner(a: Analysis) -> str:
    if a.external:
        text = f"External — pseudonymised, small cells (<{a.threshold}) suppressed"
        detail = (
            f"Participant ids are replaced by keyed pseudonyms (ID-…); counts from 1 to "
            f"{a.threshold - 1} are shown as <{a.threshold}; * marks a value withheld "
            "because it derives from a small count or would let one be worked out from a "
            "total. Dates of enrolment are given by month only."
        )
        return (f'<p class="rs-audience rs-external"><strong>{_esc(text)}</strong><br>'
                f'<span class="rs-sub">{_esc(detail)}</span></p>')  # fmt: skip
    return ('<p class="rs-audience rs-internal"><strong>Internal — contains identifiers, do '
            "not share</strong></p>")  # fmt: skip


# ---- header and provenance -----------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@section
def header(analysis: Analysis) -> Block:
    """Title, cohort, data cut-off, grouping, contents and the provenance block."""
    a = analysis
    tl = a.timeline
    cohort = a.cohort
    fingerprint = cohort.fingerprint()
    cutoff = (a.config.cutoff or cohort.data_cutoff).date().isoformat()
    n = len(tl)
    sites = sorted(tl["site"].astype("str").unique())
    arms = sorted(tl["arm"].astype("str").unique())
    enrolled = tl["enrolled_on"]
    kind = cohort.source_kind or "folder"  # the location is redacted (no password) when loaded
    if a.external:
        enrolment = f"{enrolled.min():%Y-%m} to {enrolled.max():%Y-%m}"
        withheld = "path" if kind == "folder" else "location"
        source = (f"{describe_kind(kind)} ({withheld} withheld; identified by the data fingerprint)"
                  if a.parameters.get("data") else (cohort.source or "in-memory cohort"))  # fmt: skip
    else:
        enrolment = f"{enrolled.min().date()} to {enrolled.max().date()}"
        source = cohort.source or "in-memory cohort"
        if kind != "folder":
            source = f"{describe_kind(kind)}: {source}"
    versions = _versions()
    config_name = (
        f"file {_shown_parameters(a)['config_file']}" if a.parameters.get("config_file")
        else "defaults"
    )  # fmt: skip
    if a.config.preset_name:
        config_name += f" (preset {a.config.preset_name})"
    spec = REPORTS[a.report]
    facts = [
        ("Cohort", source),
        ("Participants analysed", f"{a.count(n)} · {len(sites)} site{'s' * (len(sites) != 1)} · "
                                  f"{len(arms)} arm{'s' * (len(arms) != 1)}"),
        ("Enrolment", enrolment),
        ("Data cut-off", cutoff),
        ("Compared by", a.group_title if a.by else "not grouped"),
        ("Analysis configuration", config_name),
    ]  # fmt: skip
    facts_html = "".join(f"<div><dt>{_esc(k)}</dt><dd>{_esc(v)}</dd></div>" for k, v in facts)
    params = pd.DataFrame(
        [{"parameter": k, "value": "None" if v is None else str(v)}
         for k, v in _shown_parameters(a).items()]
    )  # fmt: skip
    vers = pd.DataFrame([{"package": k, "version": v} for k, v in versions.items()])
    provenance_html = (
        '<details class="rs-provenance"><summary>Provenance: data fingerprint, parameters, '
        "software versions</summary>"
        f'<p>Data fingerprint (SHA-256 of the cohort tables): <span class="rs-mono">'
        f"{_esc(fingerprint)}</span></p>"
        f"<p>Run at {_esc(a.started_at)} (UTC) on {_esc(platform.platform(terse=True))}; "
        f"rehabstats {_esc(versions['rehabstats'])}.</p>"
        '<div class="rs-grid">'
        + _table(params, name="provenance_parameters", caption="Parameters", index=False,
                 left=["parameter", "value"])
        + _table(vers, name="provenance_versions", caption="Software", index=False,
                 left=["package", "version"])
        + "</div></details>"
    )  # fmt: skip
    body = (
        '<header class="rs-header">'
        f"<h1>{_esc(a.title)}</h1>"
        f"{_privacy_banner(a)}"
        f'<p class="rs-subtitle">{_esc(spec.description[0].upper() + spec.description[1:])}.</p>'
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
        "parameters": _shown_parameters(a),
        "config": a.config.to_dict(),
        "versions": versions,
        "run_at": a.started_at,
        "audience": a.audience,
        "suppression_threshold": a.threshold if a.external else None,
    }
    notes = _notes([a.note_text(n) for n in a.notes], "Data notes")
    return Block(body, notes, name="header", provenance=provenance)


# ---- overview ------------------------------------------------------------------------------


@section
def at_a_glance(analysis: Analysis) -> Block:
    """Key results per group in one table (the numbers a reader looks for first)."""
    a = analysis
    pm = a.participants
    conf = a.config.confidence_level
    summary = tables.group_summary(
        pm, by="group" if a.by else None,
        continuous=["adherence_sessions", "visa_a_change_12"],
        binary=["withdrawn", "adherent", "visa_a_responder_12", "reached_stage_4", "relapsed"],
        confidence=conf,
    )  # fmt: skip
    summary = a.disclosed_summary(summary)
    km = a.km_summary_shown
    km = km[km["stage"] == 4].set_index("group")["reached_by_week_12"]
    km_all = _disclosed_km_summary(a, a.km_summary_overall)
    km_all = km_all[km_all["stage"] == 4].set_index("group")["reached_by_week_12"]
    rates = a.relapse_rates_shown
    rates = rates.assign(group=rates["group"].replace({"all": tables.OVERALL}))
    rates = rates.set_index("group")
    groups = list(dict.fromkeys(summary["group"]))
    rows: dict[str, dict[str, str]] = {}

    def cell(g: str, outcome: str) -> pd.Series:
        return summary[(summary["group"] == g) & (summary["outcome"] == outcome)].iloc[0]

    for g in groups:
        sizes = int((pm["group"] == g).sum()) if g != tables.OVERALL else len(pm)
        col = f"{_group_name(g) if g != tables.OVERALL else 'Overall'} (n = {a.count(sizes)})"
        r = {}
        w = cell(g, "withdrawn")
        r["Withdrawn"] = tables.fmt_count_pct(w["count"], _pct(w["proportion"]), 0)
        adh = cell(g, "adherence_sessions")
        r["Session adherence, weeks 1-12, mean (95% CI)"] = (
            f"{tables.fmt_pct(adh['mean'])} ({tables.fmt_ci(adh['ci_low'], adh['ci_high'], 0, percent=True)})"
        )
        ad = cell(g, "adherent")
        r[f"Adherent (≥ {a.config.adherent_threshold:.0%} of sessions)"] = tables.fmt_count_pct(
            ad["count"], _pct(ad["proportion"]), 0
        )
        stage4 = km_all if g == tables.OVERALL else km
        key = "all" if g == tables.OVERALL else g
        r["Reached stage 4 by week 12 (Kaplan-Meier)"] = tables.fmt_pct(stage4.get(key))
        v = cell(g, "visa_a_change_12")
        r["VISA-A change at 12 weeks, mean (95% CI), points"] = (
            f"{tables.fmt_num(v['mean'])} ({tables.fmt_ci(v['ci_low'], v['ci_high'])})"
        )
        rs = cell(g, "visa_a_responder_12")
        r[f"VISA-A responders (change ≥ {a.config.visa_a_mcid:g})"] = (
            tables.fmt_count_pct(rs["count"], _pct(rs["proportion"]), 0)
            + f" of {tables.fmt_count(rs['n'])}"
        )
        key_r = tables.OVERALL if g == tables.OVERALL else g
        if key_r in rates.index:
            rr = rates.loc[key_r]
            r["Relapse rate per 1000 person-weeks (95% CI)"] = (
                f"{tables.fmt_num(rr['rate_per_1000_pw'])} "
                f"({tables.fmt_ci(rr['ci_low'], rr['ci_high'])})"
            )
        rows[col] = r
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
        _table(frame, name="at_a_glance", left=[], count_rows=count_rows),
        _caption(caption),
        name="at_a_glance",
        frames={"summary": summary},
    )


@section
def participant_flow(analysis: Analysis, *, diagram: bool = True) -> Block:
    """CONSORT-style flow: diagram, counts by group and withdrawal reasons."""
    a = analysis
    pm = a.participants
    by = "group" if a.by else None
    flow_n = tables.flow_counts(pm, by=by, window_days=a.window_days)
    flow = a.disclosed(flow_n, counts=["n"], derived={"percent": ["n"]}, lines=[["step"]],
                       margin=("group", tables.OVERALL), relations=_flow_relations(flow_n))  # fmt: skip
    reasons_n = tables.withdrawal_reasons(pm, by=by, window_days=a.window_days)
    if a.external:  # a rare free-text reason is not shown at all
        reasons_n = privacy.collapse_rare(
            reasons_n, "reason", keys=["group", "when"], total=("group", tables.OVERALL),
            threshold=a.threshold, other=f"other reasons (each fewer than {a.threshold})",
        )  # fmt: skip
    reasons = a.disclosed(reasons_n, counts=["n"], lines=[["reason", "when"]],
                          margin=("group", tables.OVERALL),
                          relations=_reason_relations(reasons_n))  # fmt: skip
    parts = []
    if diagram:
        fig, ax = _subplots(*plots.flow_diagram_size(flow, reasons))
        plots.flow_diagram(flow, reasons, ax=ax)
        parts.append(
            _figure(
                fig,
                alt="Participant flow diagram",
                caption="Participant flow at the data cut-off. Group counts in each box are "
                + ("by " + a.group_title.lower() + "." if a.by else "overall."),
            )
        )
    wide = tables.format_flow(flow)
    wide.columns = [_group_name(c) if c != tables.OVERALL else "Overall" for c in wide.columns]
    parts.append(_table(wide, name="flow", caption="Participant flow, n (% of enrolled)",
                        counts=list(wide.columns)))  # fmt: skip
    if len(reasons):
        numeric = reasons_n.pivot_table(index=["reason", "when"], columns="group", values="n",
                                        aggfunc="sum", fill_value=0)  # fmt: skip
        cols = [tables.OVERALL, *[c for c in numeric.columns if c != tables.OVERALL]]
        numeric = numeric[[c for c in cols if c in numeric.columns]]
        numeric = tables.order_reasons(numeric)
        shown = reasons.assign(n=reasons["n"].map(tables.fmt_count))
        r = shown.pivot(index=["reason", "when"], columns="group", values="n")
        r = r.reindex(index=numeric.index, columns=numeric.columns).fillna("0")
        r.columns = ["Overall" if c == tables.OVERALL else c for c in r.columns]
        parts.append(_table(r, name="withdrawal_reasons", caption="Withdrawals by reason, n",
                            counts=list(r.columns)))  # fmt: skip
    else:
        parts.append(_caption("No participant withdrew before the data cut-off."))
    parts.append(
        _caption(
            f"Completed the window: follow-up reached day {a.window_days} (end of week "
            f"{a.config.window_weeks}). Started: at least one completed session in the window. "
            "Returned: a return-to-running or return-to-sport event; relapsed: the first relapse "
            "after it (definitions in the appendix)."
        )
    )
    return Block(*parts, name="participant_flow", frames={"flow": flow, "reasons": reasons})


def _table_one_relations(summary: pd.DataFrame) -> list[privacy.Relation]:
    """Levels of a variable and its missing count add up to the group size (shown)."""
    out: list[privacy.Relation] = []
    cat = summary[summary["kind"] == "categorical"]
    for _, part in cat.groupby(["variable", "group"], sort=False):
        out.append((None, [(i, "count") for i in part.index] + [(part.index[0], "missing")]))
    # missing counts across groups add up to Overall's (first level row of each variable)
    first = summary.drop_duplicates(["variable", "group"])
    for _, part in first.groupby("variable", sort=False):
        total = part.index[part["group"] == tables.OVERALL]
        parts = part.index[part["group"] != tables.OVERALL]
        if len(total) and len(parts):
            out.append(((total[0], "missing"), [(i, "missing") for i in parts]))
    return out


def _flow_relations(flow: pd.DataFrame) -> list[privacy.Relation]:
    """The splits of the flow within each group (:func:`rehabstats.report.tables.flow_counts`)."""
    splits = {
        "enrolled": ["never_started", "started"],
        "started": ["withdrawn_in_window", "in_window", "completed_window"],
        "completed_window": ["not_returned", "returned_to_running"],
    }
    out: list[privacy.Relation] = []
    for _, part in flow.groupby("group", sort=False):
        index = dict(zip(part["step"], part.index, strict=True))
        for total, steps in splits.items():
            out.append(((index[total], "n"), [(index[s], "n") for s in steps]))
    return out


def _reason_relations(reasons: pd.DataFrame) -> list[privacy.Relation]:
    """Withdrawals during / after the window by reason add up to the flow's counts of them."""
    steps = {"during window": "withdrawn_in_window", "after window": "withdrawn_after_window"}
    out: list[privacy.Relation] = []
    for (_, when), part in reasons.groupby(["group", "when"], sort=False):
        if when in steps and len(part) > 1:  # the total is the flow box's count
            out.append((None, [(i, "n") for i in part.index]))
    return out


@section
def table_one(analysis: Analysis) -> Block:
    """Table 1: baseline characteristics by group, with standardised mean differences."""
    a = analysis
    numeric, smd = tables.table_one(a.participants, by=a.by)
    stats = ["mean", "sd", "median", "q1", "q3", "percent"]
    summary = a.disclosed(numeric, counts=["n", "count", "missing"],
                          derived={c: ["n", "count"] for c in stats},
                          lines=[["variable", "level"]], margin=("group", tables.OVERALL),
                          relations=_table_one_relations(numeric),
                          denominators={"count": "n"})  # fmt: skip
    if a.external:
        summary.attrs["n"] = {g: a.count(v) for g, v in numeric.attrs["n"].items()}
        withheld = summary[["n", "count", "missing"]].map(lambda v: isinstance(v, str))
        hidden_vars = set(summary.loc[withheld.any(axis=1), "variable"])
        smd = smd.astype({"smd": object})
        smd.loc[smd["variable"].isin(hidden_vars), "smd"] = privacy.SECONDARY
    frame = tables.format_table_one(summary, smd)
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
    return Block(
        _table(frame, name="table_one", caption=f"Baseline characteristics by {a.group_title.lower()}"
               if a.by else "Baseline characteristics", count_rows=list(count_rows)),
        _caption(caption),
        name="table_one",
        frames={"summary": summary, "smd": smd},
    )  # fmt: skip


# ---- adherence -----------------------------------------------------------------------------


def _by_group_table(
    analysis: Analysis,
    rows: Sequence[tuple[str, str, str]],
    *,
    frame: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of (label, column, kind) summarised per group; kind: mean, median, count, pct."""
    a = analysis
    data = a.participants if frame is None else frame
    by = "group" if a.by else None
    continuous = [c for _, c, k in rows if k in ("mean", "median", "mean_pct", "median_int")]
    binary = [c for _, c, k in rows if k == "count"]
    summary = tables.group_summary(data, by=by, continuous=continuous, binary=binary,
                                   confidence=a.config.confidence_level)  # fmt: skip
    summary = a.disclosed_summary(summary)
    out: dict[str, dict[str, str]] = {}
    for g in dict.fromkeys(summary["group"]):
        part = summary[summary["group"] == g].set_index("outcome")
        n_group = len(data) if g == tables.OVERALL else int((data["group"] == g).sum())
        col = f"{'Overall' if g == tables.OVERALL else _group_name(g)} (n = {a.count(n_group)})"
        out[col] = {}
        for label, column, kind in rows:
            r = part.loc[column]
            if kind == "mean":
                text = tables.fmt_mean_sd(r["mean"], r["sd"], 1)
            elif kind == "mean_pct":
                text = f"{tables.fmt_pct(r['mean'])} ({tables.fmt_pct(r['sd'])})"
            elif kind in ("median", "median_int"):
                d = 0 if kind == "median_int" else 1
                text = tables.fmt_median_iqr(r["median"], r["q1"], r["q3"], d)
            else:
                text = tables.fmt_count_pct(r["count"], _pct(r["proportion"]), 0)
                if isinstance(r["n"], str) or r["n"] != n_group:
                    text += f" of {tables.fmt_count(r['n'])}"
            out[col][label] = text
    frame_out = pd.DataFrame(out)
    frame_out.index.name = ""
    frame_out.attrs["count_rows"] = [label for label, _, kind in rows if kind == "count"]
    if a.by is None:
        frame_out = frame_out.iloc[:, :1]
    return frame_out, summary


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
    frame, summary = _by_group_table(a, rows)
    fig, ax = _subplots(9.0, 3.8)
    plots.adherence_by_week(a.weekly, hue="group" if a.by else None, ax=ax,
                            threshold=a.config.adherent_threshold,
                            confidence=a.config.confidence_level)  # fmt: skip
    return Block(
        _table(
            frame,
            name="adherence",
            caption="Adherence in weeks 1-12",
            count_rows=frame.attrs["count_rows"],
        ),
        _caption(
            "Session adherence (the primary definition, CERT item 16) = completed / scheduled "
            "sessions; a session counts as completed with at least one set done. Volume "
            "adherence = completed / prescribed sets × repetitions, each session capped at its "
            "prescription. Only follow-up before withdrawal or the cut-off counts."
        ),
        _figure(
            fig,
            alt="Mean weekly session adherence by group",
            caption=f"Mean weekly session adherence with its {a.config.confidence_level:.0%} "
            "confidence band (logit-transformed t interval, within 0-100%); participants "
            "contribute the weeks they were followed in.",
        ),
        name="adherence",
        frames={"summary": summary},
    )


# ---- pain ----------------------------------------------------------------------------------


@section
def pain_trajectories(analysis: Analysis) -> Block:
    """Weekly morning pain: individual trajectories (faint) and group means with CI."""
    a = analysis
    weekly = a.weekly.dropna(subset=["pain_morning_mean"])
    fig, ax = _subplots(9.0, 4.2)
    plots.pain_trajectories(weekly, hue="group" if a.by else None, ax=ax,
                            confidence=a.config.confidence_level,
                            pain_limit=a.config.pain_limit)  # fmt: skip
    n = weekly["participant_id"].nunique()
    return Block(
        _figure(
            fig,
            alt="Weekly mean morning pain per participant and group",
            caption=f"Mean morning pain (NRS 0-10, on waking) per week for {a.count(n)} "
            "participants with "
            "diary data: thin lines are individuals, thick lines the group means with their "
            f"{a.config.confidence_level:.0%} confidence bands (logit-transformed t intervals "
            "on the 0-10 scale, so a band stays within 0-10).",
        ),
        name="pain_trajectories",
    )


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
    model = a.pain_model
    attrs = dict(model.attrs)
    ref = a.groups[0] if a.by and len(a.groups) > 1 else None
    listed = attrs.get("notes")  # one by one, Note objects kept (pain.pain_model)
    if listed is None:  # plain text: note_text treats its small numbers as counts
        listed = sorted({n for n in model["note"].dropna().astype("str") if n})
    notes = [a.note_text(n) for n in listed]
    if model.empty or model["model"].iloc[0] == "none":
        why = "; ".join(notes) or "no data"
        return Block(_caption(f"The pain model could not be fitted: {why}"),
                     name="pain_model")  # fmt: skip
    is_variance = model["term"].isin(list(_VARIANCE_TERMS))  # a dropped fixed effect: NaN
    fixed, variance = model[~is_variance], model[is_variance]
    conf = a.config.confidence_level
    rows = [
        {
            "term": _term_label(r.term, ref),
            "estimate": tables.fmt_num(r.estimate, 2),
            "df": tables.fmt_num(r.df, 1),
            f"{conf:.0%} CI": tables.fmt_ci(r.ci_low, r.ci_high, 2),
            "p": tables.fmt_p(r.p_value),
        }
        for r in fixed.itertuples()
    ]
    rows += [
        {"term": _term_label(r.term, ref), "estimate": tables.fmt_num(r.estimate, 3),
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
        + (f"; {a.count(attrs['n_observations'])} participant-weeks from "
           f"{a.count(attrs['n_participants'])} participants" if "n_observations" in attrs
           else "")
        + (f"; REML log-likelihood {attrs['reml_loglik']:.2f}" if "reml_loglik" in attrs
           else "")
        + ". Confidence intervals and p-values of the fixed effects use t distributions with "
        "Satterthwaite degrees of freedom (df), as R's lmerTest."
    )  # fmt: skip
    return Block(
        _table(frame, name="pain_model", caption="Pain trajectory model: fixed effects (CIs "
               "and p-values from t distributions with Satterthwaite degrees of freedom, df) "
               "and variance components", index=False, left=["term"]),
        _caption(info),
        _notes(notes, "Model notes"),
        name="pain_model",
        frames={"model": model},
    )  # fmt: skip


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
    frame, summary = _by_group_table(a, rows, frame=pm)
    return Block(
        _table(
            frame,
            name="pain_monitoring",
            caption="Pain monitoring in weeks 1-12",
            count_rows=frame.attrs["count_rows"],
        ),
        _caption(
            f"Pain-monitoring model (Silbernagel 2007) on each session day: pain during or "
            f"after exercise above {c.pain_limit:g}/10, or next-morning pain higher than that "
            f"morning's (+{c.settle_tolerance:g}), violates a rule; a rule without data is "
            f"unknown, not violated. A flare: next-morning pain ≥ that morning's + "
            f"{c.flare_delta:g}. A rising week: mean morning pain above the previous week's, "
            f"both with ≥ {c.rising_min_records} ratings."
        ),
        name="pain_monitoring",
        frames={"summary": summary},
    )


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
    frame, summary = _by_group_table(a, rows)
    fig, ax = _subplots(7.5, 4.2)
    change = summary[summary["outcome"] == "visa_a_change_12"]  # n as the table shows it
    shown_n = {("all" if g == tables.OVERALL and not a.by else str(g)): n
               for g, n in zip(change["group"], change["n"], strict=True)}  # fmt: skip
    plots.visa_change(a.participants, hue="group" if a.by else None, ax=ax,
                      mcid=c.visa_a_mcid, counts=shown_n)  # fmt: skip
    parts = [
        _table(
            frame,
            name="visa_a",
            caption="VISA-A (0-100, higher is better)",
            count_rows=frame.attrs["count_rows"],
        ),
        _figure(
            fig,
            alt="VISA-A change from baseline to week 12 by group",
            caption="Change in VISA-A from baseline to week 12 for participants with both "
            "visits: boxes show the quartiles, points the participants; the dashed line is "
            "the responder threshold.",
        ),
    ]
    frames = {"summary": summary}
    if a.by and len(a.groups) > 1:
        cont = tables.compare_continuous(a.participants, "visa_a_change_12", "group",
                                         confidence=c.confidence_level)  # fmt: skip
        binary = tables.compare_binary(a.participants, "visa_a_responder_12", "group",
                                       confidence=c.confidence_level)  # fmt: skip
        withheld = summary[["n", "count"]].map(lambda v: isinstance(v, str)).any(axis=1)
        hidden = set(summary.loc[withheld, "outcome"]) if a.external else set()
        if "visa_a_responder_12" in hidden:
            binary = binary.iloc[0:0]  # a risk difference would give the withheld counts away
        if "visa_a_change_12" in hidden:
            cont = cont.iloc[0:0]  # so would the means of a group smaller than the threshold
        if hidden & {"visa_a_responder_12", "visa_a_change_12"}:
            parts.append(_caption(
                "Comparisons involving a group with a count below "
                f"{a.threshold} (participants, responders or non-responders) are not shown."
            ))  # fmt: skip
        comparisons = pd.concat([cont, binary], ignore_index=True)
        frames["comparisons"] = comparisons
        parts.append(_table(_format_comparisons(comparisons, c.confidence_level),
                            name="visa_a_comparisons",
                            caption="Group comparisons (pingouin, statsmodels)", index=False,
                            left=["outcome", "comparison", "test"]))  # fmt: skip
        ref = a.groups[0]
        parts.append(_caption(
            f"Reference group: {ref}. Change: Welch's t-test (unequal variances) with "
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
            est = f"{tables.fmt_num(100 * r.estimate, 1)} pp" if pd.notna(r.estimate) else "–"
            ci = tables.fmt_ci(100 * r.ci_low, 100 * r.ci_high, 1) if pd.notna(r.ci_low) else "–"
        else:
            est = tables.fmt_num(r.estimate, 1) if r.estimate_name else ""
            ci = tables.fmt_ci(r.ci_low, r.ci_high, 1) if r.estimate_name else ""
        stat = ""
        if pd.notna(r.statistic):
            sym = {"Welch t-test": "t", "Welch ANOVA": "F", "chi-squared test": "χ²"}.get(
                r.test, ""
            )
            stat = f"{sym} = {tables.fmt_num(r.statistic, 2)}, df = {tables.fmt_num(r.dof, 1)}"
        es = ""
        if pd.notna(r.effect_size):
            es = f"{r.effect_size_name} {tables.fmt_num(r.effect_size, 2)}"
            if pd.notna(r.es_ci_low):
                es += f" ({tables.fmt_ci(r.es_ci_low, r.es_ci_high, 2)})"
        rows.append({
            "outcome": labels.get(r.outcome, r.outcome),
            "comparison": r.comparison,
            "test": r.test or "",
            "statistic": stat,
            "p": tables.fmt_p(r.p_value),
            "difference": f"{r.estimate_name}: {est}" if r.estimate_name else "",
            f"{confidence:.0%} CI": ci,
            "effect size (CI)": es,
        })  # fmt: skip
    return pd.DataFrame(rows)


# ---- stages --------------------------------------------------------------------------------


def _km_until(a: Analysis, km: pd.DataFrame, durations: pd.DataFrame) -> dict[str, float]:
    """Last day of each group's curve in an external report: the first event time with fewer
    than ``threshold`` at risk (0, not drawn, for a group smaller than the threshold)."""
    small = km[km["at_risk"] < a.threshold]
    until = small.groupby(small["group"].astype("str"))["time_days"].min().to_dict()
    sizes = durations.groupby(durations["group"].astype("str")).size()
    until.update({str(g): 0.0 for g in sizes.index[sizes < a.threshold]})
    return until


_KM_AXES = {2: (56, 7), 3: (112, 14), 4: (182, 28)}
"""Time axis of each stage's KM plot: (last day shown, days between at-risk counts)."""


@section
def time_to_stage(analysis: Analysis, *, stages: Sequence[int] = (2, 3, 4)) -> Block:
    """Kaplan–Meier time to each stage with number-at-risk tables, and the medians."""
    a = analysis
    km = a.km
    pm = a.participants
    window = 7 * a.config.window_weeks
    width = 3.5 * len(stages) + 0.5 if len(stages) > 1 else 7.5
    fig, axes = _subplots(width, 4.4 + 0.22 * len(a.groups), 1, len(stages),
                          sharey=True, squeeze=False)  # fmt: skip
    fig.get_layout_engine().set(wspace=0.08)  # room between the panels' at-risk tables
    axes = axes.ravel()
    for i, (stage, ax) in enumerate(zip(stages, axes, strict=True)):
        horizon, step = _KM_AXES.get(stage, (max(182, window), 28))
        times = np.arange(0, horizon + 1, step)
        entry = pd.to_numeric(pm[f"days_to_stage_{stage}"], errors="coerce")
        durations = pd.DataFrame({"group": pm["group"],
                                  "duration": entry.fillna(pm["follow_up_days"])})  # fmt: skip
        at_risk = a.disclosed(tables.number_at_risk(durations, times), counts=["n"])
        until = _km_until(a, km[km["stage"] == stage], durations) if a.external else None
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
            "group": _group_name(r.group),
            "n": tables.fmt_count(r.n),
            "entered": tables.fmt_count(r.events),
            "median days": tables.fmt_num(r.median_days, 0),
            f"{conf:.0%} CI": tables.fmt_ci(r.median_ci_low, r.median_ci_high, 0),
            f"reached by week {a.config.window_weeks}": tables.fmt_pct(r.reached_by_week_12),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return Block(
        _figure(
            fig,
            alt="Kaplan-Meier curves of the time to stages 2, 3 and 4",
            caption="Proportion who have reached each stage (1 − Kaplan–Meier S(t)) with "
            f"{conf:.0%} pointwise confidence bands ({a.config.km_ci_transform} transform, "
            "Greenwood variance; within 0-100%); follow-up ending without entry is "
            f"censored. The dotted line marks the end of week {a.config.window_weeks}; the "
            "numbers under each plot are participants still at risk (not yet in the stage, "
            "still followed) at the times shown."
            + (
                f" Curves end where fewer than {a.threshold} remain at risk; a group of fewer "
                f"than {a.threshold} is not drawn."
                if a.external
                else ""
            ),
        ),
        _table(
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


@section
def stage_occupancy(analysis: Analysis) -> Block:
    """Where participants are at the end of each week of the window (stacked bars)."""
    a = analysis
    occ = a.occupancy
    if a.external:
        occ = _occupancy_for_external(a, occ)
    groups = sorted(occ["group"].astype("str").unique())
    ncols = min(3, len(groups))
    nrows = int(np.ceil(len(groups) / ncols))
    fig, axes = _subplots(3.0 * ncols + 2.0, 3.1 * nrows + 0.4, nrows, ncols, sharey=True,
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
    handles = plots.legend_patches(order)
    if a.external and (occ["state"] == _SUPPRESSED_STATE).any():
        handles.append(Patch(color=plots.STAGE_COLORS.get(_SUPPRESSED_STATE, "#999"),
                             label=f"withheld (a state with fewer than {a.threshold})"))  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", frameon=False,
               fontsize=8.5)  # fmt: skip
    fig.supxlabel("Week since enrolment (week 1 = days 0-6)", fontsize=9.5)
    return Block(
        _figure(
            fig,
            alt="Stage occupancy by week and group",
            caption="State at the end of each week (day 7w − 1) of the remodelling window; the "
            "numbers above the bars are participants observed that week (those whose "
            "follow-up ended earlier without withdrawal are left out).",
        ),
        name="stage_occupancy",
        frames={"occupancy": occ},
    )


_SUPPRESSED_STATE = "withheld"


def _occupancy_for_external(a: Analysis, occ: pd.DataFrame) -> pd.DataFrame:
    """Occupancy as drawn in an external report: the states of a week with fewer than
    ``threshold`` participants (and the secondary cells that protect them) merged into one
    "withheld" bar segment; weeks with fewer than ``threshold`` observed are left out."""
    occ = occ.reset_index(drop=True)
    shown = a.disclosed(occ, counts=["n"], derived={"proportion": ["n"]},
                        lines=[["group", "week"]])  # fmt: skip
    withheld = shown["n"].map(lambda v: isinstance(v, str))
    merged = occ.assign(state=occ["state"].astype("str").where(~withheld, _SUPPRESSED_STATE))
    merged = merged.groupby(["group", "week", "state"], sort=False, as_index=False,
                            observed=True)[["n", "proportion"]].sum()  # fmt: skip
    totals = merged.groupby(["group", "week"], observed=True)["n"].transform("sum")
    return merged[totals >= a.threshold].reset_index(drop=True)


@section
def checkpoint_fidelity(analysis: Analysis) -> Block:
    """Protocol fidelity: the stage-4 checkpoint, insertional surface, regressions, stopping."""
    a = analysis
    pm = a.participants
    reached = pm["reached_stage_4"].fillna(False).astype(bool)
    insertional = pm["tendinopathy_type"].astype("str") == "insertional"
    data = pm.assign(
        checkpoint_first=(~pm["progressed_without_checkpoint"].astype(bool)).where(reached),
        without_checkpoint=pm["progressed_without_checkpoint"].astype(bool).where(reached),
        step_deviation=pm["insertional_step_deviation"].astype(bool).where(insertional),
        any_regression=pm["regressions"] > 0,
    )
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
    ]  # fmt: skip
    frame, summary = _by_group_table(a, rows, frame=data)
    c = a.config
    return Block(
        _table(
            frame,
            name="checkpoint_fidelity",
            caption="Protocol fidelity",
            count_rows=frame.attrs["count_rows"],
        ),
        _caption(
            f"Checkpoint: an involved-side single-leg isometric hold at ≥ "
            f"{c.checkpoint_load_ratio:g}× body weight for ≥ {c.checkpoint_hold_s:g} s with "
            f"pain ≤ {c.checkpoint_pain_max:g}/10 and no flare the next morning, on or before "
            "the day of the first stage-4 session. Insertional tendinopathy does its "
            "eccentrics on flat ground. Stopped early: last completed session before day "
            f"{c.stopped_early_day}."
        ),
        name="checkpoint_fidelity",
        frames={"summary": summary},
    )


# ---- relapse -------------------------------------------------------------------------------


@section
def relapse(analysis: Analysis, *, rate_ratio: bool = True) -> Block:
    """Relapse rates with exact CIs, cumulative incidence, and stopped-early vs completers."""
    a = analysis
    c = a.config
    conf = c.confidence_level
    rates = a.relapse_rates_shown
    rows = [{
        "group": "Overall" if r.group == "all" and a.by else _group_name(r.group),
        "at risk": tables.fmt_count(r.n_at_risk),
        "relapses": tables.fmt_count(r.relapses),
        "person-weeks": tables.fmt_num(r.person_weeks, 0),
        "rate per 1000 person-weeks": tables.fmt_num(r.rate_per_1000_pw, 1),
        f"{conf:.0%} CI (exact)": tables.fmt_ci(r.ci_low, r.ci_high, 1),
    } for r in rates.itertuples()]  # fmt: skip
    inc = a.relapse_incidence
    withheld_groups: set[str] = set()
    if a.external:  # no curve (nor table row) of a group whose counts are withheld
        hidden = rates[rates[["n_at_risk", "relapses"]].map(
            lambda v: isinstance(v, str)).any(axis=1)]  # fmt: skip
        withheld_groups = set(hidden["group"].astype("str"))
        inc = inc[~inc["group"].astype("str").isin(withheld_groups)]
    fig, ax = _subplots(8.5, 3.8)
    plots.cumulative_incidence(inc[inc["week"] <= 52], ax=ax,
                               markers_at=c.incidence_weeks)  # fmt: skip
    at = inc[inc["week"].isin(c.incidence_weeks)]
    wide = at.assign(value=at["cumulative_incidence"].map(lambda v: tables.fmt_pct(v, 1)))
    wide = wide.pivot(index="group", columns="week", values="value")
    wide.columns = [f"week {w}" for w in wide.columns]
    if withheld_groups:
        extra = pd.DataFrame(privacy.SECONDARY, index=sorted(withheld_groups),
                             columns=wide.columns)  # fmt: skip
        wide = pd.concat([wide, extra])
    wide.index = [_group_name(g) for g in wide.index]
    parts = [
        _table(
            pd.DataFrame(rows),
            name="relapse_rates",
            caption="Relapse after return to running or sport",
            index=False,
            left=["group"],
            counts=["at risk", "relapses"],
        ),  # fmt: skip
        _figure(
            fig,
            alt="Cumulative incidence of relapse",
            caption="Cumulative incidence of relapse since the return to running or sport "
            "(Aalen–Johansen, withdrawal as a competing event); dots mark the weeks tabulated "
            "below.",
        ),
        _table(wide, name="relapse_incidence", caption="Cumulative incidence of relapse"),
    ]
    frames = {"rates": rates, "incidence": inc}
    if rate_ratio:
        rr = a.rate_ratio
        if len(rr):
            counts = ["n_stopped_early", "relapses_stopped_early", "n_completers",
                      "relapses_completers"]  # fmt: skip
            r = a.disclosed(rr, counts=counts,
                            derived={c: counts for c in rr.columns if c not in counts},
                            denominators={"relapses_stopped_early": "n_stopped_early",
                                          "relapses_completers": "n_completers"}).iloc[0]  # fmt: skip
            text = (
                f"Participants who stopped loading before day {c.stopped_early_day} relapsed at "
                f"{tables.fmt_num(r['rate_per_1000_pw_stopped_early'], 1)} per 1000 "
                f"person-weeks ({tables.fmt_count(r['relapses_stopped_early'])} relapses in "
                f"{tables.fmt_count(r['n_stopped_early'])} at risk), completers at "
                f"{tables.fmt_num(r['rate_per_1000_pw_completers'], 1)} "
                f"({tables.fmt_count(r['relapses_completers'])} in "
                f"{tables.fmt_count(r['n_completers'])}): rate ratio "
                f"{tables.fmt_num(r['rate_ratio'], 2)} ({conf:.0%} CI "
                f"{tables.fmt_ci(r['ci_low'], r['ci_high'], 2)}, exact), "
                f"{_p_text(r['p_value']) if not isinstance(r['p_value'], str) else 'p *'}."
            )
            parts.append(f"<p>{_esc(text)}</p>")
            frames["rate_ratio"] = rr
    rules = ", ".join(c.relapse_rules)
    parts.append(_caption(
        f"At risk from the first return to running or sport. Relapse: the earliest of a "
        f"recorded relapse, {c.relapse_days} consecutive days of morning pain above "
        f"{c.pain_limit:g}/10, or a session back in stage ≤ {c.relapse_regression_stage} "
        f"(rules applied: {rules}). Rates: relapses per 1000 person-weeks at risk, exact "
        "Poisson (Garwood) intervals."
    ))  # fmt: skip
    return Block(*parts, name="relapse", frames=frames)


# ---- clinic audit --------------------------------------------------------------------------


@section
def audit_dashboard(analysis: Analysis) -> Block:
    """The service against its targets: headline tiles, a bullet chart per metric, the table."""
    a = analysis
    audit = a.audit
    plotted = audit
    if a.external:
        audit = _audit_for_external(a, audit)
        withheld = audit["value"].map(lambda v: isinstance(v, str))
        plotted = a.audit.assign(
            n=audit["n"],
            **{c: a.audit[c].where(~withheld) for c in ("value", "ci_low", "ci_high", "met")},
        )
    overall = audit[audit["site"] == "All sites"]
    tiles = []
    for r in overall.itertuples():
        shown = (tables.fmt_pct(r.value) if r.unit == "proportion"
                 else tables.fmt_num(r.value, 1))  # fmt: skip
        target = f"{r.target:.0%}" if r.unit == "proportion" else f"{r.target:g}"
        sign = "≥" if r.direction == "at_least" else "≤"
        state = ("withheld" if isinstance(r.met, str) else
                 "unknown" if pd.isna(r.met) else ("met" if bool(r.met) else "missed"))  # fmt: skip
        css = {"met": "rs-met", "missed": "rs-missed"}.get(state, "")
        ci = (tables.fmt_ci(r.ci_low, r.ci_high, 0, percent=True) if r.unit == "proportion"
              else tables.fmt_ci(r.ci_low, r.ci_high, 1))  # fmt: skip
        tiles.append(
            f'<div class="rs-kpi {css}"><div class="rs-kpi-label">{_esc(r.label)}</div>'
            f'<div class="rs-kpi-value">{_esc(shown)}</div>'
            f'<div class="rs-kpi-detail">target {sign} {_esc(target)}: <strong>{_esc(state)}</strong>'
            f" · CI {_esc(ci)} · n = {_esc(tables.fmt_count(r.n))}</div></div>"
        )
    metrics = list(dict.fromkeys(audit["metric"]))
    n_sites = audit["site"].nunique()
    nrows = int(np.ceil(len(metrics) / 2))
    fig, axes = _subplots(11.0, (0.32 * n_sites + 1.1) * nrows + 0.4, nrows, 2, squeeze=False)
    axes = axes.ravel()
    for metric, ax in zip(metrics, axes, strict=False):
        plots.audit_bullet(plotted, metric=metric, ax=ax)
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    cells, marks = {}, {}
    for r in audit.itertuples():
        prop = r.unit == "proportion"
        value = tables.fmt_pct(r.value) if prop else tables.fmt_num(r.value, 1)
        ci = (tables.fmt_ci(r.ci_low, r.ci_high, 0, percent=True) if prop
              else tables.fmt_ci(r.ci_low, r.ci_high, 1))  # fmt: skip
        sign = "≥ " if r.direction == "at_least" else "≤ "
        target = sign + (f"{r.target:.0%}" if prop else f"{r.target:g}")
        known = not isinstance(r.met, str) and not pd.isna(r.met)
        mark = ("✓" if bool(r.met) else "✗") if known else ""
        row = f"{r.label} (target {target})"
        cells.setdefault(row, {})[f"{r.site}"] = (
            f'{_esc(value)} {mark}<br><span class="rs-sub">{_esc(ci)} · n = '
            f"{_esc(tables.fmt_count(r.n))}</span>"
        )
        marks.setdefault(row, {})[f"{r.site}"] = bool(r.met) if known else None
    frame = pd.DataFrame(cells).T
    met = pd.DataFrame(marks).T.reindex(index=frame.index, columns=frame.columns)

    def colour(styler: Any) -> Any:
        css = met.map(lambda m: "color: #D55E00; font-weight: 600" if m is False else (
            "color: #00704F" if m is True else ""))  # fmt: skip
        return styler.apply(lambda _: css, axis=None)

    return Block(
        f'<div class="rs-kpis">{"".join(tiles)}</div>',
        _figure(
            fig,
            alt="Audit metrics by site against targets",
            caption="Each site's estimate with its confidence interval against the target "
            "(dashed line; the shaded side meets it). Filled circles meet the target, open "
            "diamonds miss it.",
        ),
        _table(
            frame,
            name="audit",
            caption="Audit metrics by site: estimate (✓ target met, ✗ missed), then its "
            f"{a.config.confidence_level:.0%} CI and n",
            styles=colour,
            counts=list(frame.columns),
            markup=list(frame.columns),  # value, mark, CI and n: escaped one by one above
        ),  # fmt: skip
        _caption(
            "Targets are report parameters (target_*). Met/missed compares the point estimate "
            "with the target; with few participants the interval is wide, so read it before "
            "acting on a single site. Intervals: adherence, logit-transformed t interval (the "
            "logit method of R survey::svyciprop; within 0-100%); stage 4 by week 12, the "
            "Kaplan–Meier pointwise interval; responders and checkpoint fidelity, Wilson score "
            "interval; relapse rate, exact Poisson (Garwood)."
        ),
        name="audit_dashboard",
        frames={"audit": audit},
    )


_AUDIT_COUNTED = ("responders", "checkpoint_fidelity")
"""Audit metrics that are proportions of participants (their numerator is a count)."""


def _audit_for_external(a: Analysis, audit: pd.DataFrame) -> pd.DataFrame:
    """Audit rows as shown outside the team: n is a count (sites add up to All sites); the
    numerator of a proportion of participants (value · n) is a count too; the estimate, its
    interval and met/missed go with them."""
    audit = audit.reset_index(drop=True)
    counted = audit["metric"].isin(_AUDIT_COUNTED)
    numerator = (audit["value"] * audit["n"]).round().where(counted)
    table = audit.assign(numerator=numerator)
    shown = a.disclosed(
        table, counts=["n", "numerator"],
        derived={c: ["n", "numerator"] for c in ("value", "ci_low", "ci_high", "met")},
        lines=[["metric"]], margin=("site", "All sites"), denominators={"numerator": "n"},
    )  # fmt: skip
    return shown.drop(columns="numerator")


@section
def review_list(analysis: Analysis) -> Block:
    """Participants who need attention at the data cut-off, with every reason."""
    a = analysis
    rl = a.disclosed(a.review)
    th = a.thresholds
    counts = ({REVIEW_REASONS[k]: a.count(rl[k].sum()) for k in REVIEW_REASONS} if len(rl)
              else {})  # fmt: skip
    n_care = int(((~a.timeline["withdrawn"]) &
                  (a.timeline["follow_up_days"] <= 7 * th.horizon_weeks)).sum())  # fmt: skip
    intro = (
        f"<p><strong>{_esc(a.count(len(rl)))}</strong> "
        + _esc(
            f"of {a.count(n_care)} participants under care (not withdrawn, follow-up ≤ "
            f"{th.horizon_weeks} weeks) need attention at the cut-off "
            f"{(a.config.cutoff or a.cohort.data_cutoff).date()}."
        )
        + "</p>"
    )
    parts = [intro]
    if counts:
        summary = pd.DataFrame({"participants": {k: str(v) for k, v in counts.items()}})
        summary.index.name = "reason"
        parts.append(_table(summary, name="review_reasons", caption="Reasons, n",
                            counts=["participants"]))  # fmt: skip
    if len(rl):
        shown = pd.DataFrame({
            "participant": a.participant_label(rl["participant_id"]),
            "site": rl["site"],
            "arm": rl["arm"],
            "week": rl["week"].astype("int64").astype("str"),
            "stage": rl["stage"].map(lambda v: tables.fmt_num(v, 0)),
            "reasons": rl["reasons"],
        })  # fmt: skip
        parts.append(_table(shown, name="review", caption="Review list (most reasons first)",
                            index=False, left=["participant", "site", "arm", "reasons"],
                            wrap=["reasons"]))  # fmt: skip
    else:
        parts.append(_caption("No participant meets a review rule at the cut-off."))
    parts.append(_caption(
        f"Rules: morning pain rising ≥ {th.pain_rise_points:g} point (last 7 days vs the 7 "
        f"before, each with ≥ {th.pain_min_records} ratings); a flare in the last "
        f"{th.flare_days} days; session adherence falling below "
        f"{a.config.adherent_threshold:.0%} (the last {th.recent_days} days below it and below "
        f"the {th.recent_days} days before); in stage 1/2/3 longer than "
        + "/".join(str(th.stuck_weeks[s]) for s in (1, 2, 3))
        + " weeks while loading; load stagnant; stage 4 without a passed checkpoint; "
        "insertional eccentrics off a step; stopped before week 11. Thresholds are listed in "
        "the appendix."
    ))  # fmt: skip
    return Block(*parts, name="review_list", frames={"review": rl})


@section
def swimmer(analysis: Analysis, *, limit: int | None = None) -> Block:
    """Stage timelines of the participants under care (review-list participants in bold)."""
    a = analysis
    limit = limit or int(a.parameters.get("swimmer_limit", 60))
    th = a.thresholds
    pm = a.participants
    care = pm[~pm["withdrawn"].astype(bool) & (pm["follow_up_days"] <= 7 * th.horizon_weeks)]
    flagged = care["participant_id"].isin(a.review["participant_id"])
    # priority: on the review list, then the rest under care, then others; most recent first
    priority = pd.Series(2, index=pm.index)
    priority[care.index] = 1
    priority[care.index[flagged.to_numpy()]] = 0
    order = pm.assign(_p=priority).sort_values(["_p", "enrolled_on"], ascending=[True, False])
    chosen = order.head(limit).sort_values(["site", "enrolled_on"])
    chosen = chosen.assign(
        needs_review=chosen["participant_id"].isin(a.review["participant_id"]),
        label=a.participant_label(chosen["participant_id"]) + " · " + chosen["site"].astype(str),
    )
    if chosen.empty:
        return Block(_caption("No participants to show."), name="swimmer")
    fig, ax = _subplots(11.0, 0.19 * len(chosen) + 1.3)
    plots.swimmer(chosen, ax=ax, label="label",
                  max_days=float(chosen["follow_up_days"].max()))  # fmt: skip
    shown = len(chosen)
    more = len(pm) - shown
    hidden = f"; {a.count(more)} not shown (swimmer_limit = {limit})" if more > 0 else ""
    caption = (
        f"{a.count(shown)} participants by site and enrolment, chosen in this order: those on the "
        f"review list, the others under care, then the most recently enrolled others{hidden}. "
        "Bars: the stage entered first on each day range (later regressions are not drawn), "
        "ending at the cut-off or withdrawal. Bold labels are on the review list."
    )
    return Block(_figure(fig, alt="Swimmer plot of stage timelines", caption=caption),
                 name="swimmer")  # fmt: skip


# ---- appendix ------------------------------------------------------------------------------


def _definitions(c: AnalysisConfig) -> list[tuple[str, str]]:
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
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in
                    _definitions(analysis.config))  # fmt: skip
    return Block(
        f'<dl class="rs-definitions">{items}</dl>',
        _caption("The full definitions are in docs/metrics.md of rehabstats "
                 f"{_versions()['rehabstats']}."),
        name="definitions",
    )  # fmt: skip


@section
def configuration(analysis: Analysis) -> Block:
    """The full analysis configuration used, and the report parameters."""
    a = analysis
    cfg = a.config.to_frame()
    cfg["value"] = cfg["value"].map(lambda v: "null" if v is None else str(v))
    params = pd.DataFrame(
        [{"parameter": k, "value": "None" if v is None else str(v)}
         for k, v in _shown_parameters(a).items()]
    )  # fmt: skip
    notes = _notes([a.note_text(n) for n in a.notes], "Every data and model note of this report")
    return Block(
        _table(cfg, name="configuration", caption="Analysis configuration", index=False,
               left=["key", "value", "description"], wrap=["description"]),
        _table(params, name="parameters", caption="Report parameters", index=False,
               left=["parameter", "value"]),
        notes,
        name="configuration",
        frames={"config": cfg},
    )  # fmt: skip


@section
def audit_settings(analysis: Analysis) -> Block:
    """The audit targets and the review-list thresholds used."""
    a = analysis
    t = a.targets
    targets = pd.DataFrame([
        {"target": "Session adherence, weeks 1-12 (mean)", "value": f"≥ {t.adherence:.0%}"},
        {"target": "Reached stage 4 by week 12", "value": f"≥ {t.stage4_by_week12:.0%}"},
        {"target": "VISA-A responders at 12 weeks", "value": f"≥ {t.responders:.0%}"},
        {"target": "Checkpoint passed before stage 4", "value": f"≥ {t.checkpoint_fidelity:.0%}"},
        {"target": "Relapse rate per 1000 person-weeks", "value": f"≤ {t.relapse_rate:g}"},
    ])  # fmt: skip
    return Block(
        _table(targets, name="targets", caption="Audit targets", index=False,
               left=["target"]),
        _table(a.thresholds.to_frame(), name="thresholds", caption="Review-list thresholds",
               index=False, left=["setting", "value", "meaning"], wrap=["meaning"]),
        name="audit_settings",
    )  # fmt: skip
