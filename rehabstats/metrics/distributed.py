"""The Dask engine: the metrics of a partitioned cohort, partition by partition, on a cluster.

Each partition of a partitioned cohort (:mod:`rehabstats.data.partitioned`) holds its
participants whole, so every per-participant metric family runs on one partition at a time,
unchanged, with ``map_partitions`` (explicit ``meta``, no shuffle). The cohort-level outputs are
the same estimators as the pandas engine's, fed with small per-participant or per-partition
inputs that the partitions produce in the same pass:

=======================  =====================================================================
output                   combined from
=======================  =====================================================================
time_to_stage(_summary)  per-participant durations to stage entry (Kaplan-Meier)
relapse_incidence        per-participant times since the at-risk start (Aalen-Johansen)
relapse_rates            per-participant person-time at risk (summed)
relapse_acwr             per-participant exposed/unexposed person-time and relapses (summed)
stage_occupancy          per-partition counts of group x week x state (summed)
pain_model               the REML fitter's per-participant sufficient statistics, combined in a
                         tree reduction (:meth:`rehabstats.stats.mixed.TrajectoryStats.combine`)
=======================  =====================================================================

A worker holds one partition (its tables and their metrics) at a time; the client receives only
those small inputs. ``docs/scale.md`` says when and how to use it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.partitioned import (
    PartitionedCohort,
    open_partitioned,
    part_name,
    placement_problems,
)
from rehabstats.errors import (
    CohortValidationError,
    DataWarning,
    ParameterError,
    ValidationReport,
)
from rehabstats.metrics.outputs import OUTPUT_FILES, participant_metrics, weekly_metrics
from rehabstats.metrics.pain import pain_model_data, pain_model_from_stats
from rehabstats.metrics.relapse import (
    relapse_incidence_from_times,
    relapse_incidence_times,
    relapse_person_time,
    relapse_rates_from_person_time,
)
from rehabstats.metrics.running import relapse_acwr_from_exposure, relapse_exposure
from rehabstats.metrics.stages import (
    stage_entry_durations,
    stage_occupancy_counts,
    stage_occupancy_from_counts,
    time_to_stage_from_durations,
    time_to_stage_summary_from_durations,
)
from rehabstats.time.timeline import computation

__all__ = [
    "DASK_EXTRA",
    "cohort_inputs",
    "combine_pain_statistics",
    "dask_client",
    "grouped_pain_statistics",
    "pain_statistics",
    "participant_metrics_dask",
    "require_dask",
    "weekly_metrics_dask",
    "write_metrics_dask",
]

DASK_EXTRA = (
    "the Dask engine needs the optional dependencies rehabstats[dask] (dask and distributed): "
    "python -m pip install -c requirements.lock 'rehabstats[dask]'"
)

SCHEDULER_ENV = "REHABSTATS_DASK_SCHEDULER"
"""Environment variable naming the Dask scheduler when none is given (``tcp://host:8786``)."""

WORK_PREFIX = ".rehabstats-dask-"
"""Name prefix of the work folder inside the output folder where the workers write their
partition rows (:func:`write_metrics_dask`)."""

_INPUTS = ("durations", "person_time", "incidence", "exposure", "occupancy")
"""The small per-participant or per-partition inputs of the cohort-level outputs."""

_RESULT_META = {"partition": "int64", "result": "object"}


def require_dask() -> None:
    """Import dask, dask.dataframe and distributed, or raise a ParameterError saying how to
    install them (``pip install 'rehabstats[dask]'``)."""
    try:
        import dask
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ParameterError(f"{DASK_EXTRA} (missing: {exc.name or exc})") from None


@contextmanager
def dask_client(scheduler: str | None = None, **cluster_options: Any):
    """A ``distributed.Client``: to the scheduler at ``scheduler`` (``tcp://host:8786``; None:
    the environment variable ``REHABSTATS_DASK_SCHEDULER`` when set), or to a new
    ``LocalCluster`` with ``cluster_options`` (``n_workers``, ``memory_limit``...) closed on
    exit."""
    require_dask()
    from distributed import Client, LocalCluster

    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    import dask

    options = {"processes": True, "threads_per_worker": 1, "dashboard_address": None}
    options.update(cluster_options)
    # without a dashboard, the workers' statistical profiler (a sample of every running
    # thread's stack each 10 ms) would collect what nobody sees; the workers take the
    # configuration from their nannies, which take it here
    quiet = options["dashboard_address"] is None
    with dask.config.set({"distributed.worker.profile.enabled": False}) if quiet else nullcontext():
        cluster = LocalCluster(**options)
    with cluster, Client(cluster) as client:
        yield client


def _as_partitioned(cohort: PartitionedCohort | str | os.PathLike) -> PartitionedCohort:
    return cohort if isinstance(cohort, PartitionedCohort) else open_partitioned(cohort)


# ----------------------------------------------------------------------------------------------
# One partition


@computation
def partition_outputs(
    part: PartitionedCohort,
    index: int,
    *,
    by: str | None,
    config: AnalysisConfig,
    model: bool = True,
) -> dict[str, Any]:
    """Load, validate and compute everything the engine needs from partition ``index``.

    Returns
    -------
    dict
        ``problems`` (validation problems, each placed in its partition file; empty when
        valid), ``warnings`` (the partition's data warnings), and when valid
        ``participant_metrics``, ``weekly_metrics``, the inputs of :data:`_INPUTS` and
        ``pain`` (the model's ungrouped sufficient statistics and each participant's group).
    """
    from rehabstats.data.folder import load_cohort

    name = part_name(index)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            cohort = load_cohort(part.path(index))
        except CohortValidationError as exc:
            return {"problems": _placed(exc.report.problems, name), "warnings": []}
        problems = placement_problems(
            cohort.participants["participant_id"], index, part.n_partitions
        )
        latest = cohort.data_cutoff  # the partition's latest date
        if part.latest_date is not None and latest > pd.Timestamp(part.latest_date):
            problems.append(_stale_manifest(name, latest, part.latest_date))
        if problems:
            return {"problems": problems, "warnings": []}
        cohort = cohort.with_cutoff(part.latest_date or latest)  # the whole cohort's default
        out: dict[str, Any] = {
            "problems": [],
            "participant_metrics": participant_metrics(cohort, config=config),
            "weekly_metrics": weekly_metrics(cohort, config=config),
            "durations": stage_entry_durations(cohort, by=by, config=config),
            "person_time": relapse_person_time(cohort, by=by, config=config),
            "incidence": relapse_incidence_times(cohort, by=by, config=config),
            "exposure": relapse_exposure(cohort, by=by, config=config),
            "occupancy": stage_occupancy_counts(cohort, by=by, config=config),
            "pain": pain_statistics(cohort, by, config) if model else None,
        }
    out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    return out


def _placed(problems: list, name: str) -> list:
    """Problems of a partition, each naming its partition file where the source gave none."""
    return [
        p if p.where else dataclasses.replace(p, where=f"{name}/{p.table}.parquet")
        for p in problems
    ]


def _stale_manifest(name: str, latest: pd.Timestamp, recorded: str):
    from rehabstats.errors import Problem

    return Problem(
        table="partitions.json",
        row=None,
        column="latest_date",
        value=recorded,
        rule=(
            f"{name} holds a date ({latest.date()}) after the manifest's latest date: the "
            "partitions were changed after they were written; write them again with "
            "`rehabstats partition`"
        ),
        code="consistency",
    )


def pain_statistics(
    cohort, by: str | None, config: AnalysisConfig
) -> tuple[Any, np.ndarray] | None:
    """The partition's sufficient statistics of the pain model without group terms (``S_i``
    and ``Z_i'y_i`` do not depend on the group) and each participant's group label, in the
    statistics' participant order; None without any observation."""
    from rehabstats.stats.mixed import trajectory_stats

    data = pain_model_data(cohort, by=by, config=config)
    if not len(data):
        return None
    stats = trajectory_stats(data, participant="participant", t="t", y="pain")
    labels = data.drop_duplicates("participant")["group"].to_numpy(dtype=object)
    return stats, labels


def combine_pain_statistics(a: tuple | None, b: tuple | None) -> tuple | None:
    """One step of the tree reduction of :func:`pain_statistics` results (participants of
    different partitions are disjoint: their statistics are stacked)."""
    from rehabstats.stats.mixed import TrajectoryStats

    if a is None or b is None:
        return a if b is None else b
    return TrajectoryStats.combine(a[0], b[0]), np.concatenate([a[1], b[1]])


def grouped_pain_statistics(pain: tuple | None, by: str | None) -> tuple[Any, list]:
    """The combined statistics with the model's groups: the levels are the groups holding
    pain data (sorted; the first the reference), as :func:`rehabstats.metrics.pain.pain_model`
    chooses them."""
    if pain is None:
        return None, []
    stats, labels = pain
    levels = sorted(pd.unique(labels))
    if by is not None and len(levels) >= 2:
        group = np.searchsorted(np.array(levels, dtype=object), labels).astype(np.intp)
        stats = dataclasses.replace(stats, group=group, levels=tuple(levels))
    return stats, levels


# ----------------------------------------------------------------------------------------------
# The cohort as Dask collections


def _metas(config: AnalysisConfig) -> dict[str, pd.DataFrame]:
    """Empty frames with the columns and dtypes of the partition outputs (``meta``), from the
    same functions on a tiny simulated cohort."""
    from rehabstats.data.cohort import Cohort
    from rehabstats.data.simulate import simulate_tables

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        cohort = Cohort.from_tables(simulate_tables(12, seed=0))
        return {
            "participant_metrics": participant_metrics(cohort, config=config).iloc[:0],
            "weekly_metrics": weekly_metrics(cohort, config=config).iloc[:0],
            "durations": stage_entry_durations(cohort, config=config).iloc[:0],
            "person_time": relapse_person_time(cohort, config=config).iloc[:0],
            "incidence": relapse_incidence_times(cohort, config=config).iloc[:0],
            "exposure": relapse_exposure(cohort, config=config).iloc[:0],
            "occupancy": stage_occupancy_counts(cohort, config=config).iloc[:0],
        }


def _results_frame(
    frame: pd.DataFrame, part: PartitionedCohort, by: str | None, config: AnalysisConfig, model
) -> pd.DataFrame:
    """map_partitions body: the partitions listed in ``frame`` (one) and their outputs."""
    return pd.DataFrame(
        {
            "partition": frame["partition"].to_numpy(dtype="int64"),
            "result": pd.Series(
                [
                    partition_outputs(part, int(i), by=by, config=config, model=model)
                    for i in frame["partition"]  # one partition per Dask partition
                ],
                dtype=object,
            ),
        }
    )


def _member(frame: pd.DataFrame, key: str, meta: pd.DataFrame) -> pd.DataFrame:
    """map_partitions body: one output of the partition results (empty when invalid)."""
    parts = [r[key] for r in frame["result"] if key in r]
    return pd.concat(parts, ignore_index=True) if parts else meta


def cohort_inputs(
    cohort: PartitionedCohort | str | os.PathLike,
    *,
    by: str | None = None,
    config: AnalysisConfig | None = None,
    model: bool = True,
):
    """The partition outputs of a partitioned cohort as lazy Dask collections.

    Returns
    -------
    dict
        ``results`` (a Dask DataFrame: one row per partition, its outputs in ``result``),
        ``participant_metrics``, ``weekly_metrics`` and the inputs of the cohort-level outputs
        as Dask DataFrames built with ``map_partitions`` (explicit meta) from ``results``:
        computing several of them together loads each partition once.
    """
    require_dask()
    import dask
    import dask.dataframe as dd

    part = _as_partitioned(cohort)
    config = config or AnalysisConfig()
    metas = _metas(config)
    index_meta = pd.DataFrame({"partition": pd.Series(dtype="int64")})
    with dask.config.set({"dataframe.convert-string": False}):
        listing = dd.from_map(
            lambda i: pd.DataFrame({"partition": [i]}, dtype="int64"),
            part.non_empty,
            meta=index_meta,
            enforce_metadata=False,
            label="rehabstats-partitions",
        )
        results = listing.map_partitions(
            _results_frame,
            part,
            by,
            config,
            model,
            meta=pd.DataFrame({k: pd.Series(dtype=v) for k, v in _RESULT_META.items()}),
            enforce_metadata=False,
        )
        out = {"results": results}
        for key, meta in metas.items():
            out[key] = results.map_partitions(_member, key, meta, meta=meta, enforce_metadata=False)
    return out


def participant_metrics_dask(
    cohort: PartitionedCohort | str | os.PathLike, *, config: AnalysisConfig | None = None
):
    """:func:`rehabstats.participant_metrics` of a partitioned cohort as a Dask DataFrame
    (lazy; one Dask partition per cohort partition, each in timeline order). Computing it
    raises CohortValidationError when a partition is not valid."""
    inputs = cohort_inputs(cohort, config=config, model=False)
    return inputs["results"].map_partitions(
        _checked_member,
        "participant_metrics",
        _metas(config or AnalysisConfig())["participant_metrics"],
        meta=_metas(config or AnalysisConfig())["participant_metrics"],
        enforce_metadata=False,
    )


def weekly_metrics_dask(
    cohort: PartitionedCohort | str | os.PathLike, *, config: AnalysisConfig | None = None
):
    """:func:`rehabstats.weekly_metrics` of a partitioned cohort as a Dask DataFrame."""
    inputs = cohort_inputs(cohort, config=config, model=False)
    meta = _metas(config or AnalysisConfig())["weekly_metrics"]
    return inputs["results"].map_partitions(
        _checked_member, "weekly_metrics", meta, meta=meta, enforce_metadata=False
    )


def _checked_member(frame: pd.DataFrame, key: str, meta: pd.DataFrame) -> pd.DataFrame:
    problems = [p for r in frame["result"] for p in r["problems"]]
    if problems:
        raise CohortValidationError(ValidationReport(problems=problems))
    return _member(frame, key, meta)


# ----------------------------------------------------------------------------------------------
# The output files


def _write_piece(
    frame: pd.DataFrame, folder: str, name: str, partition_info: dict | None = None
) -> pd.DataFrame:
    """map_partitions body: a partition's rows of an output file, as CSV without header (the
    pandas engine's format: missing values empty, floats at full precision)."""
    number = 0 if partition_info is None else int(partition_info["number"])
    path = Path(folder) / f"{name}.{number:05d}.csv"
    frame.to_csv(path, index=False, header=False, na_rep="")
    return pd.DataFrame({"rows": [len(frame)]}, dtype="int64")


def _pain_series(frame: pd.DataFrame) -> pd.Series:
    """map_partitions body: the partition's pain-model statistics as a one-item Series."""
    return pd.Series([r.get("pain") for r in frame["result"]], dtype=object)


def _pain_series_chunk(values: pd.Series | pd.DataFrame) -> pd.Series:
    """A step of the tree reduction (``split_every`` partitions at a time)."""
    items = np.asarray(values, dtype=object).ravel().tolist()  # a Series or a frame of them
    return pd.Series([reduce(combine_pain_statistics, items, None)], dtype=object)


def _pain_series_total(values: pd.Series) -> pd.Series:
    return _pain_series_chunk(values)


def write_metrics_dask(
    cohort: PartitionedCohort | str | os.PathLike,
    out: str | os.PathLike,
    *,
    by: str | None = None,
    config: AnalysisConfig | None = None,
    model: bool = True,
    on_warning: Callable[[str], None] | None = None,
) -> list[Path]:
    """The files of :func:`rehabstats.write_metrics` for a partitioned cohort, on the Dask
    client in use (:func:`dask_client`; without one, Dask's default scheduler).

    The partition rows of ``participant_metrics.csv`` and ``weekly_metrics.csv`` are written
    by the workers into a work folder inside ``out`` (which the workers must reach: a shared
    file system, as for any Dask file output) and joined in partition order; the cohort-level
    files are computed on the client from the small inputs. Every table is complete before any
    file is replaced, as with the pandas engine. Row order: partition by partition, each in
    timeline order (the pandas engine: timeline order of the whole cohort); every value is the
    pandas engine's.

    Raises
    ------
    CohortValidationError
        A partition breaks the contract, or a participant is in the wrong partition: every
        problem of every partition at once, each placed in its partition file.
    OutputError
        ``out`` cannot be created.
    """
    require_dask()
    import dask

    from rehabstats import files

    part = _as_partitioned(cohort)
    config = config or AnalysisConfig()
    target = Path(out)
    files.make_folder(target)
    names = [n for n in OUTPUT_FILES if n != "pain_model.csv" or model]
    files.sweep(target, names)
    # the workers' partition rows: a work folder naming this process as its owner, removed on
    # every exit path; one a killed run left is removed by the next (its owner is gone)
    files.sweep_workdirs(WORK_PREFIX, root=target)
    work = files.make_workdir(WORK_PREFIX, root=target)
    try:
        inputs = cohort_inputs(part, by=by, config=config, model=model)
        metas = _metas(config)
        with dask.config.set({"dataframe.convert-string": False}):
            pieces = [
                inputs[key].map_partitions(
                    _write_piece,
                    str(work),
                    key,
                    meta=pd.DataFrame({"rows": pd.Series(dtype="int64")}),
                    enforce_metadata=False,
                )
                for key in ("participant_metrics", "weekly_metrics")
            ]
            small = [inputs[key] for key in _INPUTS]
            status = inputs["results"].map_partitions(
                _status,
                meta=pd.DataFrame({"problems": pd.Series(dtype=object)}),
                enforce_metadata=False,
            )
            pain = (
                inputs["results"]
                .map_partitions(_pain_series, meta=pd.Series(dtype=object), enforce_metadata=False)
                .reduction(
                    _pain_series_chunk,
                    aggregate=_pain_series_total,
                    combine=_pain_series_chunk,
                    split_every=8,
                    meta=pd.Series(dtype=object),
                )
            )
            computed = dask.compute(*pieces, *small, status, pain)
        rows_p, rows_w = computed[0], computed[1]
        inputs_small = dict(zip(_INPUTS, computed[2 : 2 + len(_INPUTS)], strict=True))
        status_frame, pain_stats = computed[-2], computed[-1].iloc[0]
        problems = [p for ps in status_frame["problems"] for p in ps[0]]
        if problems:
            raise CohortValidationError(
                ValidationReport(problems=problems), source=str(part.folder)
            )
        if on_warning is not None:
            for message in dict.fromkeys(m for ps in status_frame["problems"] for m in ps[1]):
                on_warning(message)
        frames: dict[str, Callable[[Path], None]] = {}
        for key, name in (
            ("participant_metrics", "participant_metrics.csv"),
            ("weekly_metrics", "weekly_metrics.csv"),
        ):
            header = metas[key].to_csv(index=False)
            count = len(rows_p if key == "participant_metrics" else rows_w)
            frames[name] = _joiner(header, [work / f"{key}.{k:05d}.csv" for k in range(count)])
        tables = _cohort_level(inputs_small, pain_stats, by=by, config=config, model=model)
        for name, table in tables.items():
            frames[name] = _csv_writer(table)
        items = [(target / name, frames[name]) for name in sorted(names)]
        return files.write_files(items)
    finally:
        files.remove_workdir(work)


def _status(frame: pd.DataFrame) -> pd.DataFrame:
    """map_partitions body: each partition's problems and warnings (tiny)."""
    return pd.DataFrame(
        {"problems": pd.Series([(r["problems"], r["warnings"]) for r in frame["result"]],
                               dtype=object)}
    )  # fmt: skip


def _joiner(header: str, pieces: list[Path]) -> Callable[[Path], None]:
    """Write the header, then each piece's bytes (a constant amount of memory)."""

    def write(path: Path) -> None:
        with open(path, "wb") as out:
            out.write(header.encode("utf-8"))
            for piece in pieces:
                with open(piece, "rb") as source:
                    shutil.copyfileobj(source, out, length=1 << 22)

    return write


def _csv_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_csv(path, index=False, na_rep="")


def _cohort_level(
    inputs: dict[str, pd.DataFrame],
    pain: tuple | None,
    *,
    by: str | None,
    config: AnalysisConfig,
    model: bool,
) -> dict[str, pd.DataFrame]:
    """The cohort-level output files from the combined small inputs (the same estimators as
    the pandas engine's ``*_from_*`` functions)."""
    durations = inputs["durations"]
    out = {
        "time_to_stage.csv": time_to_stage_from_durations(durations, config),
        "time_to_stage_summary.csv": time_to_stage_summary_from_durations(durations, config),
        "relapse_rates.csv": relapse_rates_from_person_time(inputs["person_time"], config),
        "relapse_incidence.csv": relapse_incidence_from_times(inputs["incidence"], config),
        "stage_occupancy.csv": stage_occupancy_from_counts(inputs["occupancy"]),
        "relapse_acwr.csv": relapse_acwr_from_exposure(inputs["exposure"], config),
    }
    if model:
        stats, levels = grouped_pain_statistics(pain, by)
        out["pain_model.csv"] = pain_model_from_stats(stats, by=by, levels=levels, config=config)
    return out
