"""All metrics of a cohort in the shapes of the output files (``docs/metrics.md`` §9)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from rehabstats.config import AnalysisConfig
from rehabstats.data.cohort import Cohort
from rehabstats.metrics.adherence import adherence, weekly_adherence
from rehabstats.metrics.pain import pain_model, pain_monitoring, weekly_pain_arrays
from rehabstats.metrics.quality import exercise_quality
from rehabstats.metrics.relapse import relapse_incidence, relapse_metrics, relapse_rates
from rehabstats.metrics.running import relapse_acwr, running_metrics, weekly_running_arrays
from rehabstats.metrics.stages import (
    stage_metrics,
    stage_occupancy,
    time_to_stage,
    time_to_stage_summary,
)
from rehabstats.metrics.visa import visa_a_outcomes
from rehabstats.time.timeline import (
    computation,
    observed_rows,
    participant_timeline,
    stage_on,
    window_grid,
)

__all__ = [
    "OUTPUT_FILES",
    "PARTICIPANT_COLUMNS",
    "WEEKLY_COLUMNS",
    "participant_metrics",
    "weekly_metrics",
    "write_metrics",
]

PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "participant_id", "site", "arm", "tendinopathy_type", "follow_up_days", "withdrawn",
    "sessions_scheduled", "sessions_completed", "adherence_sessions", "adherence_volume",
    "adherent", "load_stagnant_weeks", "load_stagnant", "pain_morning_week1",
    "pain_morning_week12", "pain_change", "session_days", "pmm_violation_days",
    "pmm_violation_rate", "flares", "weeks_rising", "visa_a_baseline", "visa_a_week12",
    "visa_a_change_12", "visa_a_responder_12", "highest_stage", "reached_stage_2",
    "reached_stage_3", "reached_stage_4", "days_to_stage_2", "days_to_stage_3",
    "days_to_stage_4", "regressions", "checkpoint_passed", "progressed_without_checkpoint",
    "insertional_step_deviation", "last_session_day", "stopped_early", "at_risk_start_day",
    "relapsed", "days_to_relapse", "relapse_source", "person_weeks_at_risk",
    "tempo_sessions_known", "fast_tempo_sessions", "fast_tempo_rate", "back_to_back_days",
    "first_run_day", "run_days", "running_pain_days", "acwr_max", "acwr_spike_days",
    "volume_spike_weeks", "rts_criteria_day", "returned_before_criteria",
)  # fmt: skip
"""The columns of ``participant_metrics.csv`` in the order of the contract (§9, then §10-§11)."""

WEEKLY_COLUMNS: tuple[str, ...] = (
    "participant_id", "week", "stage", "sessions_scheduled", "sessions_completed",
    "adherence_sessions", "pain_morning_mean", "running_minutes",
)  # fmt: skip
"""The columns of ``weekly_metrics.csv`` in the order of the contract (§9, then §11)."""


@computation
def participant_metrics(
    cohort: Cohort, *, config: AnalysisConfig | None = None, engine: str = "pandas"
) -> pd.DataFrame:
    """One row per analysed participant with every per-participant metric.

    Parameters
    ----------
    cohort : Cohort
        Or, with ``engine="dask"``, a partitioned cohort (its folder or
        :class:`~rehabstats.data.partitioned.PartitionedCohort`).
    config : AnalysisConfig, optional
        Thresholds; default ``AnalysisConfig()``.
    engine : {"pandas", "dask"}
        ``"dask"`` returns a lazy Dask DataFrame computed partition by partition on the Dask
        client in use (:mod:`rehabstats.metrics.distributed`, ``docs/scale.md``).

    Returns
    -------
    DataFrame
        The columns of :data:`PARTICIPANT_COLUMNS` in that order (see ``docs/metrics.md`` for
        each definition), followed by the further per-participant outputs of the metric
        families (VISA-A at the other visits, time in each stage).

    Notes
    -----
    Each family is computed by its own module (:mod:`rehabstats.metrics.adherence`,
    :mod:`~rehabstats.metrics.pain`, :mod:`~rehabstats.metrics.visa`, :mod:`~rehabstats.metrics.stages`,
    :mod:`~rehabstats.metrics.relapse`, :mod:`~rehabstats.metrics.quality`, :mod:`~rehabstats.metrics.running`) on the
    same timeline and joined on ``participant_id``.
    """
    if _engine(engine) == "dask":
        from rehabstats.metrics.distributed import participant_metrics_dask

        return participant_metrics_dask(cohort, config=config)
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    base = timeline[["site", "arm", "tendinopathy_type", "follow_up_days", "withdrawn"]]
    out = base.reset_index()
    families: list[Callable[..., pd.DataFrame]] = [
        adherence, pain_monitoring, visa_a_outcomes, stage_metrics, relapse_metrics,
        exercise_quality, running_metrics,
    ]  # fmt: skip
    for family in families:
        part = family(cohort, config=config)
        part = part.assign(participant_id=part["participant_id"].astype("str"))
        out = out.merge(part, on="participant_id", how="left", validate="one_to_one")
    extra = [c for c in out.columns if c not in PARTICIPANT_COLUMNS]
    return out[[*PARTICIPANT_COLUMNS, *extra]]


@computation
def weekly_metrics(
    cohort: Cohort, *, config: AnalysisConfig | None = None, engine: str = "pandas"
) -> pd.DataFrame:
    """One row per participant and week of the remodelling window within follow-up, and per
    later week of follow-up of participants who run.

    ``engine="dask"``: as :func:`participant_metrics`, a lazy Dask DataFrame of a partitioned
    cohort.

    Returns
    -------
    DataFrame
        participant_id, week, stage (the stage at the end of the week — the stage of the latest
        scheduled session on or before day 7·week − 1, or on ``obs_end`` when follow-up ends
        within the week; NaN before the first session), sessions_scheduled, sessions_completed,
        adherence_sessions (NaN when none scheduled), pain_morning_mean (mean morning NRS that
        week; NaN without morning ratings), running_minutes (§11), then adherence_volume and
        n_morning_records. Participants in timeline order, then by week.

    Notes
    -----
    The window metrics (§3-§5) cover weeks 1..min(``window_weeks``, week of ``obs_end``) of
    every participant. Weekly running (§11) covers the whole follow-up: ``running_minutes`` is
    the total minutes run in the week, 0 for a followed week without a run, from the week of
    ``first_run_day`` to the week holding ``obs_end``; it is missing before that week and for
    participants without a run. A participant who runs after the window therefore has further
    rows, one per week up to the week holding ``obs_end``, in which only ``running_minutes`` is
    given (every window metric is missing there, including ``stage``; the counts are nullable
    integers so that they stay whole numbers). Without running data the table is the window
    grid alone.
    """
    if _engine(engine) == "dask":
        from rehabstats.metrics.distributed import weekly_metrics_dask

        return weekly_metrics_dask(cohort, config=config)
    config = config or AnalysisConfig()
    timeline = participant_timeline(cohort, config)
    out = weekly_adherence(cohort, config=config)
    last_week, starts, grid_pos = window_grid(timeline, config.window_weeks)  # weekly_adherence's
    follow = timeline["follow_up_days"].to_numpy().astype("int64")
    pos, week, mean, n_records = weekly_pain_arrays(cohort, timeline, config)
    cell = starts[pos] + week - 1
    out["pain_morning_mean"] = _on_grid(len(out), cell, mean)
    out["n_morning_records"] = _on_grid(len(out), cell, n_records)
    del pos, week, mean, n_records, cell
    end_day = np.minimum(7 * out["week"].to_numpy() - 1, follow[grid_pos])
    rows, s_pos, s_day = observed_rows(cohort.sessions, "session_date", timeline)
    out["stage"] = stage_on(
        s_pos, s_day, cohort.sessions["stage"].to_numpy(dtype="float64")[rows], grid_pos, end_day
    )
    del rows, s_pos, s_day, end_day  # a session-table size each: gone before the running weeks
    out = _with_running_weeks(out, cohort, timeline, grid_pos, starts, last_week)
    extra = [c for c in out.columns if c not in WEEKLY_COLUMNS]
    return out[[*WEEKLY_COLUMNS, *extra]]


def _engine(engine: str) -> str:
    if engine not in ("pandas", "dask"):
        from rehabstats.errors import ParameterError

        raise ParameterError(f"engine must be 'pandas' or 'dask', got {engine!r}")
    return engine


def _on_grid(size: int, cell: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` at the ``cell`` positions of a float array of ``size``, NaN elsewhere."""
    out = np.full(size, np.nan)
    out[cell] = values
    return out


def _with_running_weeks(
    out: pd.DataFrame,
    cohort: Cohort,
    timeline: pd.DataFrame,
    grid_pos: np.ndarray,
    starts: np.ndarray,
    last_week: np.ndarray,
) -> pd.DataFrame:
    """The window grid with ``running_minutes``, and each participant's running weeks after it
    placed after their window rows (see :func:`weekly_metrics`)."""
    pos, week, minutes = weekly_running_arrays(cohort, timeline)
    in_grid = week <= last_week[pos]
    cell = starts[pos[in_grid]] + week[in_grid] - 1
    out["running_minutes"] = _on_grid(len(out), cell, minutes[in_grid])
    counts = ["sessions_scheduled", "sessions_completed"]
    later = ~in_grid
    if not later.any():
        return out.astype(dict.fromkeys(counts, "Int64"))
    # rows of participant p move down by the later rows of the participants before p; p's
    # later rows follow its window rows (both arrays are in participant-week order)
    extra_pos, extra_week, extra_minutes = pos[later], week[later], minutes[later]
    del pos, week, minutes, in_grid, later, cell
    n_extra = np.bincount(extra_pos, minlength=len(timeline))
    shift = np.cumsum(n_extra) - n_extra
    window_at = np.arange(len(out)) + shift[grid_pos]
    rank = np.arange(len(extra_pos)) - np.searchsorted(extra_pos, extra_pos)
    extra_at = starts[extra_pos] + last_week[extra_pos] + shift[extra_pos] + rank
    del rank, shift, n_extra
    total = len(out) + len(extra_pos)
    who = np.empty(total, dtype="int64")
    who[window_at] = grid_pos
    who[extra_at] = extra_pos
    columns: dict[str, object] = {"participant_id": timeline.index.astype("str").take(who).array}
    for name in list(out.columns[1:]):
        values = out.pop(name)  # each window column freed once placed: one copy at a time
        if name in counts:
            merged = np.zeros(total, dtype="int64")
            merged[window_at] = values.to_numpy(dtype="int64")
            missing = np.ones(total, dtype=bool)
            missing[window_at] = False
            columns[name] = pd.arrays.IntegerArray(merged, missing)
            continue
        merged = np.full(total, np.nan)
        merged[window_at] = values.to_numpy(dtype="float64")
        if name == "week":
            merged[extra_at] = extra_week
            columns[name] = merged.astype("int64")
        else:
            if name == "running_minutes":
                merged[extra_at] = extra_minutes
            columns[name] = merged
        del values
    return pd.DataFrame(columns, copy=False)


OUTPUT_FILES: dict[str, Callable[..., pd.DataFrame]] = {
    "participant_metrics.csv": lambda c, by, cfg: participant_metrics(c, config=cfg),
    "weekly_metrics.csv": lambda c, by, cfg: weekly_metrics(c, config=cfg),
    "time_to_stage.csv": lambda c, by, cfg: time_to_stage(c, by=by, config=cfg),
    "time_to_stage_summary.csv": lambda c, by, cfg: time_to_stage_summary(c, by=by, config=cfg),
    "relapse_rates.csv": lambda c, by, cfg: relapse_rates(c, by=by, config=cfg),
    "relapse_incidence.csv": lambda c, by, cfg: relapse_incidence(c, by=by, config=cfg),
    "pain_model.csv": lambda c, by, cfg: pain_model(c, by=by, config=cfg),
    "stage_occupancy.csv": lambda c, by, cfg: stage_occupancy(c, by=by, config=cfg),
    "relapse_acwr.csv": lambda c, by, cfg: relapse_acwr(c, by=by, config=cfg),
}
"""Every output file of ``rehabstats metrics`` and the function producing it."""


@computation
def write_metrics(
    cohort: Cohort,
    out: str | os.PathLike,
    *,
    by: str | None = None,
    config: AnalysisConfig | None = None,
    model: bool = True,
    format: str = "csv",
    on_computed: Callable[[str, pd.DataFrame], None] | None = None,
) -> list[Path]:
    """Compute every output table and write them as CSV (or Parquet) files into ``out``.

    Each table is computed and written as a temporary file in ``out`` in turn (one table in
    memory at a time); the files are then moved over the previous ones together
    (:func:`rehabstats.files.write_files`), so a failure leaves no half-written set and no
    file replaced. Files get the umask's mode. Booleans are written
    ``True``/``False``; missing values are empty fields; floats at full precision (Python's
    ``repr``): the text of ``DataFrame.to_csv(index=False, na_rep="")``, made column by
    column (:func:`rehabstats.metrics.tables.csv_bytes`).

    Parameters
    ----------
    model : bool
        Fit the pain trajectory model (``pain_model.csv``; seconds at 100,000
        participants).
    format : {"csv", "parquet"}
        ``parquet``: the same tables as Parquet files (``participant_metrics.parquet``...), with
        their types (nullable integers and booleans, categories). The files of the same names
        in the other format, left by an earlier run, are removed in the same step, so that the
        folder holds one set.
    on_computed : callable, optional
        Called with each file's name and table once it is computed (a progress bar).

    Raises
    ------
    OutputError
        ``out`` cannot be created (a file is in the way, permissions).
    """
    from rehabstats import files
    from rehabstats.errors import ParameterError
    from rehabstats.metrics.tables import FORMATS, table_writer

    if format not in FORMATS:
        raise ParameterError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    config = config or AnalysisConfig()
    target = Path(out)
    files.make_folder(target)
    names = [n for n in OUTPUT_FILES if n != "pain_model.csv" or model]
    files.sweep(target, [Path(n).with_suffix(f".{f}").name for n in names for f in FORMATS])

    def content(name: str) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            frame = OUTPUT_FILES[name](cohort, by, config)
            if on_computed is not None:
                on_computed(name, frame)
            table_writer(frame, format)(path)

        return write

    # each table is computed when its temporary file is written and let go once written, so
    # that at most one output table is held at a time (memory at registry size)
    order = sorted(names, key=lambda n: Path(n).with_suffix(f".{format}").name)
    items = [(target / Path(n).with_suffix(f".{format}").name, content(n)) for n in order]
    other = [Path(n).with_suffix(f".{f}").name for n in names for f in FORMATS if f != format]
    return files.write_files(items, remove=[n for n in other if (target / n).is_file()])
