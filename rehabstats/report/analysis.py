"""The analysis behind a report: its parameters, cohort and configuration, and the tables it shows.

:func:`prepare` validates a report's parameters (:mod:`rehabstats.report.specs`), loads or
simulates the cohort and sets the analysis up as the report's declaration says (the column
compared by, a one-group subset, the parameters that set configuration keys, the demo's interim
cut-off). The :class:`Analysis` it returns computes each metric table once, on first use, and
shares it between the report's sections; every table also exists as it may be shown to the
report's audience (the ``*_shown`` results, through :class:`rehabstats.report.disclosure.
Disclosure`). Nothing here draws or formats: the tables can be tested without rendering.

Data notes
----------
Warnings raised while a table is computed are kept with the table (a table computed from
others keeps theirs too). A section shows the notes of the tables it uses (and of its own
computations), so where a note appears depends on what a section shows, not on which cell
happened to compute a table first. The notes of loading the data and of the participant
timeline (the cut-off: late enrolments, rows after it) are the report's *data notes*, shown
once in its header rather than under every section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module
from typing import Any

import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.constants import OVERALL
from rehabstats.data.cohort import Cohort
from rehabstats.errors import Note, ParameterError
from rehabstats.report import disclosure as privacy
from rehabstats.report.format import group_label
from rehabstats.report.specs import report_spec, validate_parameters

__all__ = [
    "RELAPSE_CURVE_WEEKS",
    "RUNNING_WEEKS",
    "Analysis",
    "acwr_rates",
    "demo_cohort",
    "incidence_config",
    "prepare",
    "report_config",
    "result",
    "warning_note",
]

RELAPSE_CURVE_WEEKS = 52
"""The cumulative incidence of relapse is computed weekly, and drawn, to this week (the
configured ``incidence_weeks`` are computed too)."""

RUNNING_WEEKS = 26
"""Weekly running volume is summarised, and drawn, to this week since the first run."""


class _Recording:
    """The notes recorded while a table or a section is computed, in the order they arose."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._caught: list[warnings.WarningMessage] = []
        self._read = 0

    def add(self, notes: Iterator[str] | list[str] | tuple[str, ...]) -> None:
        for note in notes:
            if note not in self.notes:  # several metrics repeat one data warning: once
                self.notes.append(note)

    def flush(self) -> None:
        """The warnings caught so far, as notes."""
        new, self._read = self._caught[self._read :], len(self._caught)
        self.add(
            warning_note(w)
            for w in new
            if not issubclass(w.category, DeprecationWarning | FutureWarning)
        )


def warning_note(w: warnings.WarningMessage) -> str:
    """A caught warning's text: the :class:`~rehabstats.errors.Note` it carries (its counts
    kept apart, for an external report) or its text."""
    message = w.message
    args = message.args if isinstance(message, Warning) else ()
    if len(args) == 1 and isinstance(args[0], Note):
        return args[0]
    return message if isinstance(message, Note) else str(message)


class result:  # noqa: N801 - used as a decorator, like functools.cached_property
    """A table of the analysis: computed once on first use, kept with its notes.

    Using it (also from another result) records its notes in whatever is being computed.
    """

    def __init__(self, fn: Callable[[Analysis], Any]):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, analysis: Analysis | None, owner: type | None = None) -> Any:
        if analysis is None:
            return self
        return analysis.use(self.name, self.fn)


def _metric(module: str, name: str, *, overall: str | None = None) -> result:
    """A result: ``rehabstats.metrics.<module>.<name>(cohort, by=..., config=...)`` by the
    analysis' groups; with ``overall``, over the whole cohort (group ``all``), which is the
    result ``overall`` when the analysis is not grouped."""

    def compute(analysis: Analysis) -> Any:
        if overall is not None and analysis.by is None:
            return getattr(analysis, overall)
        fn = getattr(import_module(f"rehabstats.metrics.{module}"), name)
        by = None if overall is not None else analysis.by
        return fn(analysis.cohort, by=by, config=analysis.config)

    whole = "over the whole cohort (group ``all``)" if overall else "by the analysis' groups"
    compute.__doc__ = f":func:`rehabstats.metrics.{module}.{name}` {whole}."
    return result(compute)


def _shown(table: str, rule: str) -> result:
    """The result ``table`` as the report's audience may see it: the :class:`~rehabstats.report.
    disclosure.Disclosure` method ``rule`` applied to it (a tuple where the rule returns one)."""

    def shown(analysis: Analysis) -> Any:
        return getattr(analysis.disclosure, rule)(getattr(analysis, table))

    shown.__doc__ = (
        f"``{table}`` as the report's audience may see it "
        f"(:meth:`~rehabstats.report.disclosure.Disclosure.{rule}`)."
    )
    return result(shown)


@dataclass(eq=False)
class Analysis:
    """Everything a report shows, computed once on first use and shared by its sections.

    Build with :func:`prepare`. Each table is a :class:`result`: computed on first use, kept
    with the data notes raised computing it (see the module notes); ``<name>_shown`` is the
    table as the report's audience may see it (:attr:`disclosure`).
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
    load_notes: list[str] = field(default_factory=list)  # Note objects where a warning had one
    started_at: str = ""
    seeded: dict[str, tuple[Any, list[str]]] = field(default_factory=dict, repr=False)
    _results: dict[str, tuple[Any, list[str]]] = field(init=False, default_factory=dict)
    _recordings: list[_Recording] = field(init=False, default_factory=list)
    _seen: dict[str, None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # tables computed elsewhere (a Dask cluster: rehabstats.report.cluster), with their notes
        self._results.update(self.seeded)

    def computed(self, name: str) -> tuple[Any, list[str]]:
        """The result ``name`` and the notes raised computing it (computed now if needed)."""
        getattr(self, name)
        return self._results[name]

    # -- notes ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def recording(self) -> Iterator[_Recording]:
        """Record the notes of what runs inside: warnings raised, and the notes of every
        table used (:class:`result`)."""
        rec = _Recording()
        self._recordings.append(rec)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rec._caught = caught
                yield rec
                rec.flush()
        finally:
            self._recordings.pop()
        self._seen.update(dict.fromkeys(rec.notes))

    def use(self, name: str, fn: Callable[[Analysis], Any]) -> Any:
        """The table ``name`` (computed by ``fn`` on first use); its notes are recorded in
        what is being computed."""
        if name not in self._results:
            with self.recording() as rec:
                value = fn(self)
            self._results[name] = (value, rec.notes)
        value, notes = self._results[name]
        if self._recordings:
            self._recordings[-1].flush()  # what was raised before, first
            self._recordings[-1].add(notes)
        return value

    @property
    def data_notes(self) -> list[str]:
        """Notes of loading the data and of the participant timeline (the cut-off)."""
        with self.recording() as rec:
            rec.add(self.load_notes)
            self.timeline  # noqa: B018 - its notes
        return rec.notes

    @property
    def notes(self) -> list[str]:
        """Every note of the report so far: the data notes, then the others as they arose."""
        data = self.data_notes
        return data + [n for n in self._seen if n not in data]

    # -- disclosure ----------------------------------------------------------------------------

    @cached_property
    def disclosure(self) -> privacy.Disclosure:
        """The privacy rules of this report's audience (:mod:`rehabstats.report.disclosure`)."""
        return privacy.Disclosure(
            self.audience, threshold=self.threshold, key=self.key,
            ids=self.cohort.participants["participant_id"],
        )  # fmt: skip

    # -- the cohort ----------------------------------------------------------------------------

    @result
    def timeline(self) -> pd.DataFrame:
        from rehabstats.time.timeline import participant_timeline

        return participant_timeline(self.cohort, self.config)

    @result
    def participants(self) -> pd.DataFrame:
        """``participant_metrics`` with sex, age, body mass, enrolment, withdrawal and group."""
        from rehabstats.metrics.outputs import participant_metrics

        pm = participant_metrics(self.cohort, config=self.config)
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
            return pd.Series(OVERALL, index=frame.index, dtype="str")
        if self.by in frame:
            return frame[self.by].astype("str")
        tl = self.timeline
        labels = tl[self.by].astype("str").set_axis(tl.index.astype("str"))
        return pd.Series(labels.reindex(frame["participant_id"].astype("str")).to_numpy(),
                         index=frame.index, dtype="str")  # fmt: skip

    @property
    def groups(self) -> list[str]:
        return sorted(self.participants["group"].unique())

    @property
    def group_title(self) -> str:
        """The column compared by, as a title (``Tendinopathy type``; ``All participants``)."""
        if self.by is None:
            return group_label(OVERALL, whole="participants")
        return self.by.replace("_", " ").capitalize()

    @property
    def group_by(self) -> str | None:
        """The participants' column of the groups (``group``), None when not grouped."""
        return "group" if self.by else None

    @result
    def weekly(self) -> pd.DataFrame:
        from rehabstats.metrics.outputs import weekly_metrics

        wm = weekly_metrics(self.cohort, config=self.config)
        wm = wm.assign(participant_id=wm["participant_id"].astype("str"))
        groups = self.participants.set_index("participant_id")["group"]
        return wm.assign(group=groups.reindex(wm["participant_id"]).to_numpy())

    @result
    def flow(self) -> pd.DataFrame:
        """:func:`rehabstats.metrics.flow.flow_counts` by group."""
        from rehabstats.metrics.flow import flow_counts

        return flow_counts(self.participants, by=self.group_by, config=self.config)

    @result
    def withdrawal_reasons(self) -> pd.DataFrame:
        """:func:`rehabstats.metrics.flow.withdrawal_reasons` by group."""
        from rehabstats.metrics import flow

        return flow.withdrawal_reasons(self.participants, by=self.group_by, config=self.config)

    @result
    def table_one(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:func:`rehabstats.stats.summaries.table_one`: (summary, smd)."""
        from rehabstats.stats.summaries import table_one

        return table_one(self.participants, by=self.by)

    # -- stages --------------------------------------------------------------------------------

    km = _metric("stages", "time_to_stage")
    km_overall = _metric("stages", "time_to_stage", overall="km")
    km_summary = _metric("stages", "time_to_stage_summary")
    km_summary_overall = _metric("stages", "time_to_stage_summary", overall="km_summary")
    occupancy = _metric("stages", "stage_occupancy")

    # -- outcomes ------------------------------------------------------------------------------

    @result
    def relapse_rates(self) -> pd.DataFrame:
        """Rates per group, then the whole cohort's row (group ``all``) when grouped."""
        from rehabstats.metrics.relapse import relapse_rates

        parts = [relapse_rates(self.cohort, by=self.by, config=self.config)]
        if self.by is not None:
            parts.append(relapse_rates(self.cohort, config=self.config))
        return pd.concat(parts, ignore_index=True)

    @result
    def relapse_incidence(self) -> pd.DataFrame:
        """Cumulative incidence weekly to :data:`RELAPSE_CURVE_WEEKS` and at the configured
        weeks."""
        from rehabstats.metrics.relapse import relapse_incidence

        return relapse_incidence(self.cohort, by=self.by, config=incidence_config(self.config))

    @result
    def rate_ratio(self) -> pd.DataFrame:
        from rehabstats.metrics.relapse import relapse_rate_ratio

        return relapse_rate_ratio(self.cohort, config=self.config)

    pain_model = _metric("pain", "pain_model")

    @result
    def visa_a_comparisons(self) -> dict[str, pd.DataFrame]:
        """The VISA-A change and responders compared between the groups (none ungrouped)."""
        from rehabstats.stats.summaries import compare_binary, compare_continuous

        if not self.by or len(self.groups) < 2:
            return {}
        conf = self.config.confidence_level
        return {
            "visa_a_change_12": compare_continuous(
                self.participants, "visa_a_change_12", "group", confidence=conf
            ),
            "visa_a_responder_12": compare_binary(
                self.participants, "visa_a_responder_12", "group", confidence=conf
            ),
        }

    # -- return to running ---------------------------------------------------------------------

    @result
    def running_load(self) -> pd.DataFrame:
        """:func:`rehabstats.metrics.running.running_load` (one row per runner-day) with the
        group."""
        from rehabstats.metrics.running import running_load

        load = running_load(self.cohort, config=self.config)
        return load.assign(group=self._groups(load))

    @result
    def weekly_running(self) -> pd.DataFrame:
        """:func:`rehabstats.metrics.running.weekly_running` (one row per runner-week)."""
        from rehabstats.metrics.running import weekly_running

        return weekly_running(self.cohort, config=self.config)

    @result
    def running_volume(self) -> pd.DataFrame:
        """:func:`rehabstats.metrics.running.running_volume` by group, to
        :data:`RUNNING_WEEKS` weeks since the first run."""
        from rehabstats.metrics.running import running_volume

        weekly = self.weekly_running
        follow = self.participants.set_index("participant_id")["follow_up_days"]
        weekly = weekly.assign(
            follow_up_days=follow.reindex(weekly["participant_id"]).to_numpy(),
            group=self._groups(weekly),
        )
        return running_volume(weekly, by="group", weeks=RUNNING_WEEKS)

    @result
    def acwr_distribution(self) -> pd.DataFrame:
        """:func:`rehabstats.metrics.running.acwr_histogram` of the runner-days by group."""
        from rehabstats.metrics.running import acwr_histogram

        return acwr_histogram(self.running_load, by="group")

    @result
    def relapse_acwr(self) -> pd.DataFrame:
        """:func:`rehabstats.metrics.running.relapse_acwr` per group, then the whole cohort's
        row (group ``all``) when grouped, with the rate per 1000 person-weeks of each state
        (``exposed_rate_per_1000_pw``, ``unexposed_rate_per_1000_pw``; NaN without
        person-time)."""
        from rehabstats.metrics.running import relapse_acwr

        parts = [relapse_acwr(self.cohort, by=self.by, config=self.config)]
        if self.by is not None:
            parts.append(relapse_acwr(self.cohort, config=self.config))
        return acwr_rates(pd.concat(parts, ignore_index=True))

    # -- the clinic audit ----------------------------------------------------------------------

    @result
    def review(self) -> pd.DataFrame:
        from rehabstats.metrics.review import review_list

        return review_list(self.cohort, config=self.config, participants=self.participants)

    @result
    def audit(self) -> pd.DataFrame:
        """``audit_summary`` by the groups (the whole cohort first)."""
        from rehabstats.metrics.review import audit_summary

        km = self.km if self.by is None else pd.concat([self.km, self.km_overall],
                                                         ignore_index=True)  # fmt: skip
        return audit_summary(
            self.participants, km, self.relapse_rates, by=self.by, config=self.config
        )

    # -- as shown to the report's audience -----------------------------------------------------

    flow_shown = _shown("flow", "flow")
    km_summary_shown = _shown("km_summary", "km_summary")
    km_summary_overall_shown = _shown("km_summary_overall", "km_summary")
    occupancy_shown = _shown("occupancy", "occupancy")
    relapse_rates_shown = _shown("relapse_rates", "relapse_rates")
    rate_ratio_shown = _shown("rate_ratio", "rate_ratio")
    review_shown = _shown("review", "table")
    withdrawal_reasons_shown = _shown("withdrawal_reasons", "withdrawal_reasons")
    audit_shown = _shown("audit", "audit")
    running_volume_shown = _shown("running_volume", "running_volume")
    acwr_distribution_shown = _shown("acwr_distribution", "acwr_distribution")
    relapse_acwr_shown = _shown("relapse_acwr", "relapse_acwr")

    @result
    def table_one_shown(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``table_one`` as the report's audience may see it (:meth:`Disclosure.table_one`)."""
        return self.disclosure.table_one(*self.table_one)

    @result
    def relapse_incidence_shown(self) -> tuple[pd.DataFrame, list[str]]:
        """(incidence, groups withheld): :meth:`Disclosure.incidence`."""
        return self.disclosure.incidence(self.relapse_incidence, self.relapse_rates_shown)


def incidence_config(config: AnalysisConfig) -> AnalysisConfig:
    """The configuration of a report's cumulative incidence of relapse: weekly to
    :data:`RELAPSE_CURVE_WEEKS`, and the configured ``incidence_weeks``."""
    curve = set(range(1, RELAPSE_CURVE_WEEKS + 1))
    return config.replace(incidence_weeks=tuple(sorted(curve | set(config.incidence_weeks))))


def acwr_rates(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`rehabstats.metrics.running.relapse_acwr` rows with the rate per 1000
    person-weeks of each state (``exposed_rate_per_1000_pw``, ``unexposed_rate_per_1000_pw``;
    NaN without person-time)."""
    out = table.copy()
    for state in ("exposed", "unexposed"):
        weeks = out[f"{state}_person_weeks"]
        out[f"{state}_rate_per_1000_pw"] = 1000 * out[f"{state}_relapses"] / weeks.where(weeks > 0)
    return out


def demo_cohort(n_participants: int = 500, *, seed: int = 0) -> Cohort:
    """The embedded demo cohort: :func:`rehabstats.data.simulate.simulate_cohort`, labelled."""
    from rehabstats.data.simulate import simulate_cohort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the simulator's deliberate data issues (see notes)
        cohort = simulate_cohort(n_participants, seed=seed)
    label = f"simulated demo cohort ({n_participants} participants, seed {seed})"
    return dataclasses.replace(cohort, source=label)


def prepare(report: str, **parameters: Any) -> Analysis:
    """Validate a report's parameters, load (or simulate) the cohort, set up the analysis.

    Parameters
    ----------
    report : str
        A report of :data:`rehabstats.report.specs.REPORTS`.
    **parameters
        The notebook's parameters (:func:`rehabstats.report.specs.report_parameters`); the same
        validation as :func:`rehabstats.render_report`, so a notebook run by hand with a bad
        value fails with the same message.

    Returns
    -------
    Analysis
        Set up as the report's :class:`~rehabstats.report.specs.ReportSpec` declares: the
        configuration (``config_file``, then the cut-off and the parameters that set
        configuration keys), the column compared by, the one group its subset parameter
        names, the demo's interim cut-off.

    Raises
    ------
    ParameterError
        A bad parameter, or a subset value (a site) that is not in the data.
    """
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    params = validate_parameters(report, parameters)
    spec = report_spec(report)
    if params.get("engine") == "dask" and params["data"] is not None:
        from rehabstats.report.cluster import prepare_cluster

        return prepare_cluster(report, params, started=started)
    config = (
        AnalysisConfig.from_yaml(params["config_file"]) if params["config_file"]
        else AnalysisConfig()
    )  # fmt: skip
    notes: list[str] = []
    if params["data"] is None:
        cohort = demo_cohort(params["demo_participants"], seed=params["demo_seed"])
        if spec.demo_interim_days is not None and params["data_cutoff"] is None:
            days = spec.demo_interim_days
            interim = cohort.participants["enrolled_on"].max() - pd.Timedelta(days=days)
            cohort = cohort.with_cutoff(interim.normalize())
            notes.append(
                Note(
                    "Demo: the simulated cohort is analysed at an interim cut-off ({cutoff}, "
                    "{days} days before the last enrolment) so that the audit shows "
                    "participants still in the programme.",
                    cutoff=cohort.data_cutoff.date().isoformat(),
                    days=days,
                )
            )
    else:
        from rehabstats.data.shared import load_shared

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # a batch run's validated copy while the folder is unchanged, else loaded
            cohort = load_shared(params["data"])
        notes.extend(warning_note(w) for w in caught)
    key = None
    if params["audience"] == "external":
        # the key comes from the environment (render_report passes it to the kernel) or the
        # key file; it is never a notebook parameter, so it is never written into a report
        key = privacy.privacy_key(params["pseudonym_key_file"])
    config = report_config(report, params, config)
    if config.data_cutoff is not None:
        cohort = cohort.with_cutoff(config.data_cutoff)
    by = spec.grouping(params)
    subset = params[spec.subset_parameter] if spec.subset_parameter else None
    if subset is not None:
        values = sorted(cohort.participants[by].astype("str").unique())
        if subset not in values:
            name = spec.subset_parameter
            raise ParameterError(
                f"{name} {subset!r} is not in the data; {name}s: {', '.join(values)}"
            )
        cohort = cohort.filter(**{by: subset})
    return Analysis(
        report=report,
        cohort=cohort,
        config=config,
        by=by,
        parameters=params,
        title=params["title"] or spec.title,
        audience=params["audience"],
        threshold=params["suppression_threshold"],
        key=key,
        load_notes=list(dict.fromkeys([*notes, *cohort.warnings])),
        started_at=started.isoformat().replace("+00:00", "Z"),
    )


def report_config(
    report: str, params: dict[str, Any], config: AnalysisConfig | None = None
) -> AnalysisConfig:
    """A report's analysis configuration from its validated parameters: ``config`` (default
    the ``config_file``'s, else the defaults), then the cut-off and the parameters that set
    configuration keys."""
    if config is None:
        config = (
            AnalysisConfig.from_yaml(params["config_file"]) if params["config_file"]
            else AnalysisConfig()
        )  # fmt: skip
    if params["data_cutoff"] is not None:
        config = config.replace(data_cutoff=params["data_cutoff"])
    return config.replace(**report_spec(report).config_changes(params))
