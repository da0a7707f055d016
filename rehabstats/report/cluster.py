"""A report of a partitioned cohort: its tables computed on a Dask cluster, drawn here.

With ``engine = "dask"`` (``rehabstats report ... --engine dask``) the report's data is a
partitioned cohort (:mod:`rehabstats.data.partitioned`). Each partition (its participants
whole) is loaded, validated and analysed on a worker, by the same :class:`~rehabstats.report.
analysis.Analysis` as a cohort in memory, restricted to that partition; the client combines
the partitions' results into the tables of the whole cohort and hands them to the report's
:class:`Analysis` already computed (:attr:`Analysis.seeded`). Every section then draws from
the same tables as with the pandas engine: no section has a second code path.

What the client receives (``docs/scale.md``):

=========================  ===================================================================
table                      combined from the partitions as
=========================  ===================================================================
participants, timeline     per-participant rows, concatenated (participant_id order)
weekly                     per participant-week: only the columns drawn (week, adherence,
                           morning pain), concatenated
weekly_running             per runner-week rows, concatenated
review                     the participants needing review (few by nature), re-sorted
time to stage, relapse,    the estimators of the whole cohort on per-participant durations,
occupancy, relapse after   person-time, incidence times, exposure and per-partition counts
spikes, pain model         (as ``rehabstats metrics --engine dask``); the pain model from the
                           REML fitter's sufficient statistics (a tree reduction)
ACWR distribution          per-partition counts of runner-days in each bin, summed
=========================  ===================================================================

The raw tables (sessions, diary, running...), the largest by far, never leave the workers.
The data notes of the partitions are merged: the same note from several partitions is shown
once, with its counts summed.

The render (:func:`rehabstats.render_report`) computes the tables in its own process before
the kernel starts (a data problem is reported as for a cohort folder, before any kernel
starts) and hands them to the kernel as a file in its private work folder
(:data:`CLUSTER_TABLES_ENV`); a notebook run by hand computes them itself.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.errors import (
    CohortValidationError,
    Note,
    ParameterError,
    ValidationReport,
)

__all__ = [
    "CLUSTER_TABLES_ENV",
    "ClusterTables",
    "PartitionedView",
    "cluster_tables",
    "merge_notes",
    "prepare_cluster",
    "write_for_kernel",
]

CLUSTER_TABLES_ENV = "REHABSTATS_CLUSTER_TABLES"
"""Environment variable through which the render hands the kernel the file of the tables it
computed on the cluster (:func:`write_for_kernel`)."""

WEEKLY_COLUMNS = ("participant_id", "week", "adherence_sessions", "pain_morning_mean", "group")
"""The columns of ``weekly`` a report draws (the adherence and pain-by-week figures)."""

_ROWS = ("timeline", "participants", "weekly", "weekly_running")
"""Per-participant (or per participant-week) results concatenated on the client."""


@dataclass(frozen=True)
class PartitionedView:
    """What a report reads of a partitioned cohort besides its tables: the participants
    table (one row per participant), where it came from, its cut-off and fingerprint.

    Stands in for :class:`rehabstats.Cohort` in :attr:`Analysis.cohort`; the other tables of
    the cohort stay on the workers.
    """

    participants: pd.DataFrame
    source: str
    data_cutoff: pd.Timestamp
    digest: str
    warnings: list[str] = field(default_factory=list)
    source_kind: str = "folder"

    @property
    def n_participants(self) -> int:
        return len(self.participants)

    def fingerprint(self) -> str:
        """SHA-256 of the partitions' fingerprints (:meth:`rehabstats.Cohort.fingerprint`),
        in partition order: equal for the same partitions; not the fingerprint of the same
        tables in one folder (their rows are in another order)."""
        return self.digest


@dataclass
class ClusterTables:
    """The report's tables of a partitioned cohort, with the notes raised computing them."""

    results: dict[str, tuple[Any, list[str]]]
    view: PartitionedView
    load_notes: list[str]


# ---- notes ---------------------------------------------------------------------------------


def merge_notes(lists: Iterable[Iterable[str]]) -> list[str]:
    """The notes of several partitions as one list: a :class:`~rehabstats.errors.Note` with the
    same words and values in several partitions once, its counts summed; any other text once.
    In the order the notes first appear."""
    merged: dict[Any, str] = {}
    for notes in lists:
        for note in notes:
            if isinstance(note, Note) and note.counts:
                key = (note.template, tuple(sorted((k, repr(v)) for k, v in note.values.items())))
                if key in merged:
                    old = merged[key]
                    counts = {k: old.counts.get(k, 0) + v for k, v in note.counts.items()}
                    merged[key] = Note(note.template, counts=counts, **note.values)
                else:
                    merged[key] = note
            else:
                merged.setdefault(("text", str(note)), note)
    return list(merged.values())


def _caught(caught: list[warnings.WarningMessage]) -> list[str]:
    from rehabstats.report.analysis import warning_note

    return [
        warning_note(w)
        for w in caught
        if not issubclass(w.category, DeprecationWarning | FutureWarning)
    ]


# ---- one partition (on a worker) -----------------------------------------------------------


def partition_tables(
    folder: str,
    index: int,
    *,
    report: str,
    params: dict[str, Any],
    config: AnalysisConfig,
    latest_date: str | None,
) -> dict[str, Any]:
    """Load, validate and analyse partition ``index`` as the report would a whole cohort.

    Returns
    -------
    dict
        ``problems`` (validation problems, each placed in its partition file), ``values`` (the
        subset column's values, for the clinic audit's ``site``), ``fingerprint``, and when
        the partition holds participants of the report: ``rows`` (the per-participant results
        and their notes), ``inputs`` (the small inputs of the cohort-level tables and their
        notes), ``participants`` (the cohort's participants table), ``load_notes``.
    """
    from rehabstats.data.folder import load_cohort
    from rehabstats.data.partitioned import open_partitioned, part_name, placement_problems
    from rehabstats.metrics.distributed import pain_statistics
    from rehabstats.metrics.relapse import relapse_incidence_times, relapse_person_time
    from rehabstats.metrics.running import acwr_histogram, relapse_exposure
    from rehabstats.metrics.stages import stage_entry_durations, stage_occupancy_counts
    from rehabstats.report.analysis import Analysis, incidence_config
    from rehabstats.report.specs import report_spec

    part = open_partitioned(folder)
    name = part_name(index)
    spec = report_spec(report)
    by = spec.grouping(params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cohort = load_cohort(part.path(index))
        except CohortValidationError as exc:
            problems = [
                p if p.where else dataclasses.replace(p, where=f"{name}/{p.table}.parquet")
                for p in exc.report.problems
            ]
            return {"problems": problems}
    load_notes = _caught(caught)
    problems = placement_problems(cohort.participants["participant_id"], index, part.n_partitions)
    if problems:
        return {"problems": problems}
    out: dict[str, Any] = {"problems": [], "fingerprint": cohort.fingerprint()}
    cohort = cohort.with_cutoff(config.data_cutoff or latest_date or cohort.data_cutoff)
    subset = params[spec.subset_parameter] if spec.subset_parameter else None
    if subset is not None:
        out["values"] = set(cohort.participants[by].astype("str").unique())
        if subset not in out["values"]:
            return out
        cohort = cohort.filter(**{by: subset})
    a = Analysis(report=report, cohort=cohort, config=config, by=by, parameters=params, title="")
    names = [*_ROWS, *(("review",) if report == "clinic_audit" else ())]
    rows = {n: a.computed(n) for n in names}
    value, notes = rows["weekly"]
    rows["weekly"] = (value[[c for c in WEEKLY_COLUMNS if c in value]], notes)
    inc = incidence_config(config)
    steps = {
        "durations": lambda: stage_entry_durations(cohort, by=by, config=config),
        "durations_all": lambda: stage_entry_durations(cohort, config=config),
        "occupancy": lambda: stage_occupancy_counts(cohort, by=by, config=config),
        "person_time": lambda: relapse_person_time(cohort, by=by, config=config),
        "person_time_all": lambda: relapse_person_time(cohort, config=config),
        "incidence": lambda: relapse_incidence_times(cohort, by=by, config=inc),
        "exposure": lambda: relapse_exposure(cohort, by=by, config=config),
        "exposure_all": lambda: relapse_exposure(cohort, config=config),
        "pain": lambda: pain_statistics(cohort, by, config),
        "acwr": lambda: acwr_histogram(a.running_load, by="group"),
    }
    inputs = {}
    for key, step in steps.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = step()
        inputs[key] = (value, _caught(caught))
    out.update(
        rows=rows,
        inputs=inputs,
        participants=cohort.participants,
        load_notes=load_notes + [n for n in cohort.warnings if n not in load_notes],
    )
    return out


# ---- the whole cohort (on the client) ------------------------------------------------------


def cluster_tables(
    report: str,
    params: dict[str, Any],
    *,
    config: AnalysisConfig,
    scheduler: str | None = None,
) -> ClusterTables:
    """The report's tables of the partitioned cohort ``params["data"]``, on a Dask cluster
    (:func:`rehabstats.metrics.distributed.dask_client`: ``scheduler``, else
    ``REHABSTATS_DASK_SCHEDULER``, else a local cluster).

    Raises
    ------
    ParameterError
        Without dask installed (how to install it), when ``data`` is not a partitioned
        cohort, or for a subset value (a site) that is not in the data.
    CohortValidationError
        Every problem of every partition at once, each placed in its partition file.
    """
    from rehabstats.data.partitioned import is_partitioned, open_partitioned
    from rehabstats.metrics.distributed import dask_client, require_dask

    require_dask()
    folder = params["data"]
    if not is_partitioned(folder):
        raise ParameterError(
            f"engine dask needs a partitioned cohort (a folder with partitions.json, written by "
            f"`rehabstats partition`); {folder} is not one"
        )
    part = open_partitioned(folder)
    options = {
        "report": report,
        "params": params,
        "config": config,
        "latest_date": part.latest_date,
    }
    with dask_client(scheduler or params.get("scheduler")) as client:
        futures = [
            client.submit(partition_tables, str(part.folder), i, **options, pure=False)
            for i in part.non_empty
        ]
        parts = client.gather(futures)
    problems = [p for r in parts for p in r["problems"]]
    if problems:
        raise CohortValidationError(ValidationReport(problems=problems), source=str(folder))
    return _combine(report, params, config, parts, source=str(part.folder))


def _concat(parts: list[dict[str, Any]], section: str, key: str) -> tuple[pd.DataFrame, list]:
    frames = [p[section][key][0] for p in parts]
    notes = merge_notes(p[section][key][1] for p in parts)
    return pd.concat(frames, ignore_index=False), notes


def _combine(
    report: str,
    params: dict[str, Any],
    config: AnalysisConfig,
    results: list[dict[str, Any]],
    *,
    source: str,
) -> ClusterTables:
    from rehabstats.data.partitioned import combined_fingerprint
    from rehabstats.metrics.distributed import combine_pain_statistics, grouped_pain_statistics
    from rehabstats.metrics.pain import pain_model_from_stats
    from rehabstats.metrics.relapse import (
        relapse_incidence_from_times,
        relapse_rate_ratio_from_metrics,
        relapse_rates_from_person_time,
    )
    from rehabstats.metrics.running import relapse_acwr_from_exposure
    from rehabstats.metrics.stages import (
        stage_occupancy_from_counts,
        time_to_stage_from_durations,
        time_to_stage_summary_from_durations,
    )
    from rehabstats.report.analysis import acwr_rates, incidence_config
    from rehabstats.report.specs import report_spec

    spec = report_spec(report)
    by = spec.grouping(params)
    subset = params[spec.subset_parameter] if spec.subset_parameter else None
    if subset is not None:
        values = sorted(set().union(*(r.get("values", set()) for r in results)))
        if subset not in values:
            name = spec.subset_parameter
            raise ParameterError(
                f"{name} {subset!r} is not in the data; {name}s: {', '.join(values)}"
            )
    digest = combined_fingerprint(r["fingerprint"] for r in results)
    parts = [r for r in results if "rows" in r]
    seeded: dict[str, tuple[Any, list[str]]] = {}
    # per-participant rows in participant_id order (the pandas engine: the source's order)
    timeline, notes = _concat(parts, "rows", "timeline")
    seeded["timeline"] = (timeline.sort_index(kind="stable"), notes)
    for key, order in (
        ("participants", ["participant_id"]),
        ("weekly", ["participant_id", "week"]),
        ("weekly_running", ["participant_id", "week"]),
    ):
        frame, notes = _concat(parts, "rows", key)
        frame = frame.sort_values(order, kind="stable") if len(frame) else frame
        seeded[key] = (frame.reset_index(drop=True), notes)
    if report == "clinic_audit":
        review, notes = _concat(parts, "rows", "review")
        review = review.sort_values(
            ["n_reasons", "site", "participant_id"], ascending=[False, True, True], kind="stable"
        )
        seeded["review"] = (review.reset_index(drop=True), notes)

    def inputs(key: str) -> tuple[pd.DataFrame, list[str]]:
        frame, notes = _concat(parts, "inputs", key)
        if "participant_id" in frame:  # the sums in the pandas engine's order
            frame = frame.sort_values("participant_id", kind="stable")
        return frame.reset_index(drop=True), notes

    def put(name: str, value: Any, *notes: list[str]) -> None:
        seeded[name] = (value, merge_notes(notes))

    durations, n_d = inputs("durations")
    put("km", time_to_stage_from_durations(durations, config), n_d)
    put("km_summary", time_to_stage_summary_from_durations(durations, config), n_d)
    person_time, n_p = inputs("person_time")
    rates = relapse_rates_from_person_time(person_time, config)
    exposure, n_e = inputs("exposure")
    acwr = relapse_acwr_from_exposure(exposure, config)
    notes_rates, notes_acwr = [n_p], [n_e]
    if by is not None:
        whole, n_w = inputs("durations_all")
        put("km_overall", time_to_stage_from_durations(whole, config), n_w)
        put("km_summary_overall", time_to_stage_summary_from_durations(whole, config), n_w)
        whole, n_w = inputs("person_time_all")
        rates = pd.concat([rates, relapse_rates_from_person_time(whole, config)],
                          ignore_index=True)  # fmt: skip
        notes_rates.append(n_w)
        whole, n_w = inputs("exposure_all")
        acwr = pd.concat([acwr, relapse_acwr_from_exposure(whole, config)], ignore_index=True)
        notes_acwr.append(n_w)
    put("relapse_rates", rates, *notes_rates)
    put("relapse_acwr", acwr_rates(acwr), *notes_acwr)
    counts, n_o = inputs("occupancy")
    put("occupancy", stage_occupancy_from_counts(counts), n_o)
    times, n_i = inputs("incidence")
    put("relapse_incidence", relapse_incidence_from_times(times, incidence_config(config)), n_i)
    participants = seeded["participants"][0]
    put("rate_ratio", relapse_rate_ratio_from_metrics(participants, config),
        seeded["participants"][1])  # fmt: skip
    pain = reduce(combine_pain_statistics, (p["inputs"]["pain"][0] for p in parts), None)
    stats, levels = grouped_pain_statistics(pain, by)
    with warnings.catch_warnings(record=True) as caught:  # the model's own notes
        warnings.simplefilter("always")
        model = pain_model_from_stats(stats, by=by, levels=levels, config=config)
    put("pain_model", model, merge_notes(p["inputs"]["pain"][1] for p in parts), _caught(caught))
    put("acwr_distribution", _acwr_histogram(inputs("acwr")[0]),
        merge_notes(p["inputs"]["acwr"][1] for p in parts))  # fmt: skip
    view = PartitionedView(
        participants=pd.concat([p["participants"] for p in parts], ignore_index=True)
        .sort_values("participant_id", kind="stable")
        .reset_index(drop=True),
        source=source,
        data_cutoff=pd.Timestamp(config.data_cutoff or _latest(results, source)),
        digest=digest,
    )
    load_notes = merge_notes(p["load_notes"] for p in parts)
    return ClusterTables(results=seeded, view=view, load_notes=load_notes)


def _latest(results: list[dict[str, Any]], source: str) -> str:
    from rehabstats.data.partitioned import open_partitioned

    return str(open_partitioned(source).latest_date)


def _acwr_histogram(hist: pd.DataFrame) -> pd.DataFrame:
    """:func:`rehabstats.metrics.running.acwr_histogram` of the whole cohort from those of
    its partitions: runner-days and runners summed per group and bin (a partition lists every
    bin of each group it holds), the shares of the summed runner-days."""
    import numpy as np

    if not len(hist):
        return hist
    keys = ["group", "bin_low", "bin_high"]
    out = hist.groupby(keys, sort=True)[["days", "runners"]].sum().reset_index()
    totals = out.groupby("group")["days"].transform("sum")
    out["share"] = out["days"] / np.maximum(totals, 1)
    columns = ["group", "bin_low", "bin_high", "days", "share", "runners"]
    return out[columns].astype({"group": "str", "days": "int64", "runners": "int64"})


# ---- the report's analysis -----------------------------------------------------------------


def write_for_kernel(report: str, params: dict[str, Any], workdir: Path) -> dict[str, str]:
    """Compute the tables (:func:`cluster_tables`) and write them into the render's private
    work folder; returns the kernel's environment naming the file."""
    from rehabstats.report.analysis import report_config

    tables = cluster_tables(report, params, config=report_config(report, params))
    path = Path(workdir) / "cluster-tables.pickle"
    with open(path, "wb") as fh:
        pickle.dump(tables, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {CLUSTER_TABLES_ENV: str(path)}


def prepare_cluster(report: str, params: dict[str, Any], *, started: Any) -> Any:
    """:func:`rehabstats.report.analysis.prepare` of a partitioned cohort: the tables the
    render computed (:data:`CLUSTER_TABLES_ENV`), else computed here, seeded into the
    report's :class:`~rehabstats.report.analysis.Analysis`."""
    from rehabstats.report import disclosure as privacy
    from rehabstats.report.analysis import Analysis, report_config
    from rehabstats.report.specs import report_spec

    config = report_config(report, params)
    handed = os.environ.get(CLUSTER_TABLES_ENV)
    if handed and Path(handed).is_file():
        with open(handed, "rb") as fh:  # written by this render, in its private folder
            tables = pickle.load(fh)
    else:
        tables = cluster_tables(report, params, config=config)
    spec = report_spec(report)
    key = privacy.privacy_key(params["pseudonym_key_file"]) if params["audience"] == "external" \
        else None  # fmt: skip
    return Analysis(
        report=report,
        cohort=tables.view,  # type: ignore[arg-type]
        config=config,
        by=spec.grouping(params),
        parameters=params,
        title=params["title"] or spec.title,
        audience=params["audience"],
        threshold=params["suppression_threshold"],
        key=key,
        load_notes=list(tables.load_notes),
        started_at=started.isoformat().replace("+00:00", "Z"),
        seeded=tables.results,
    )
