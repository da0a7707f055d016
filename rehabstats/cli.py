"""The ``rehabstats`` command (also ``python -m rehabstats``)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from rehabstats.errors import BatchLockedError, DataWarning, JobFileError, RehabstatsError
from rehabstats.lazy import skip_iri_grammars
from rehabstats.report.specs import report_names

if TYPE_CHECKING:
    from rehabstats.config import AnalysisConfig
    from rehabstats.errors import ValidationReport
    from rehabstats.files import Interrupted

__all__ = ["main"]


class _IsoDate(click.ParamType):
    """A date written ``YYYY-MM-DD`` (a real date: no month 13, no ``2024-1-1``)."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        import datetime as dt
        import re

        text = str(value).strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return dt.date.fromisoformat(text).isoformat()
            except ValueError as exc:
                self.fail(f"{value!r} is not a date YYYY-MM-DD ({exc})", param, ctx)
        self.fail(f"must be a date YYYY-MM-DD (e.g. 2024-06-30), got {value!r}", param, ctx)


_DATE = _IsoDate()


class _Source(click.ParamType):
    """A cohort source: a folder, a REDCap export or API address, a database mapping file, a
    database URL or ``env:NAME``.

    A URL that carries a password (or a token) is refused: a command line is visible to other
    users (process list, shell history); the message says how to pass it safely.
    """

    name = "SOURCE"

    def __init__(self, *, exists: bool = False) -> None:
        self.exists = exists

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        from rehabstats.data.sources import check_no_secret, source_path
        from rehabstats.errors import ParameterError

        text = str(value)
        if not text.strip():
            self.fail(
                "must be a cohort folder, a REDCap export, a database URL or a mapping file",
                param,
                ctx,
            )
        try:
            check_no_secret(text)
        except ParameterError as exc:
            self.fail(str(exc), param, ctx)
        path = source_path(text)
        if path is None:
            return text
        prefix, named = path
        if self.exists and not named.exists():
            self.fail(
                f"{text!r} does not exist (a cohort folder, a REDCap export, a database mapping "
                "file, or a URL such as postgresql://user@host/database or "
                "https://redcap.example.org/api/)",
                param,
                ctx,
            )
        return prefix + str(Path(text[len(prefix) :]))


_SOURCE_HELP = (
    "DATA is a cohort folder, a database URL (postgresql://user@host/database, "
    "sqlite:///cohort.db; the password from PGPASSWORD or ~/.pgpass, never on the command "
    "line), a database mapping file (.yaml) or env:NAME (the source in an environment "
    "variable): docs/databases.md. Or REDCap: a raw records export (its .csv file, or a "
    "folder holding redcap_export.csv and redcap_dictionary.csv) or the API address "
    "(https://redcap.example.org/api/; the token in REHABSTATS_REDCAP_TOKEN or a file named "
    "by REHABSTATS_REDCAP_TOKEN_FILE): docs/redcap.md."
)

_MAX_SIMULATED = 200_000
"""Most participants ``simulate`` makes (about 40 million rows; the benchmarks use 100,000)."""


def _out_folder(value: str | None, option: str = "--out") -> Path | None:
    """An output folder option as a Path; empty text is refused (it is not '.')."""
    if value is None:
        return None
    if not str(value).strip():
        raise click.BadParameter(f"must be a folder path, got {value!r}", param_hint=f"'{option}'")
    return Path(value)


def _out_target(value: str) -> Path | str:
    """``simulate --out``: a folder (a Path) or a database URL (without a password)."""
    from rehabstats.data.sources import check_no_secret, is_url
    from rehabstats.errors import ParameterError

    if is_url(value) or value.startswith("env:"):
        try:
            check_no_secret(value)
        except ParameterError as exc:
            raise click.BadParameter(str(exc), param_hint="'--out'") from None
        return value
    folder = _out_folder(value)
    if folder is not None and folder.exists() and not folder.is_dir():
        raise click.BadParameter(f"{value!r} is a file, not a folder", param_hint="'--out'")
    return folder  # type: ignore[return-value]


def _exit_invalid(
    data: Path | str,
    report: ValidationReport,
    *,
    fmt: str = "text",
    err: bool = False,
    max_details: int | None = 20,
) -> NoReturn:
    """Print a failed validation as ``rehabstats validate`` does and exit 1.

    One function for every command that validates a cohort (validate, report, metrics), so
    that the same data gives the same message everywhere.
    """
    if fmt == "json":
        click.echo(report.to_json(), err=err)
    else:
        click.echo(report.format_text(max_details=max_details, source=str(data)), err=err)
    sys.exit(1)


def _analysis_config(config_path: Path | None, data_cutoff: str | None) -> AnalysisConfig:
    """A command's analysis configuration: its ``--config`` file (else the defaults) with its
    ``--data-cutoff``. Every command passes the cut-off this one way, into the configuration,
    which owns it (the cohort knows only its default, the latest date: docs/data.md, *Dates*).
    """
    from rehabstats.config import AnalysisConfig
    from rehabstats.errors import ConfigError

    try:
        config = AnalysisConfig.from_yaml(config_path) if config_path else AnalysisConfig()
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--config'") from None
    return config if data_cutoff is None else config.replace(data_cutoff=data_cutoff)


_quiet_option = click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress lines on stderr (they appear only on a terminal anyway).",
)


def _progress(quiet: bool):
    """The command's progress on stderr: shown on a terminal unless ``--quiet``."""
    from rehabstats.progress import Progress

    return Progress(enabled=False if quiet else None)


def _interrupted(exc: Interrupted, what: str) -> NoReturn:
    """Report a command stopped by a signal (after its clean-up ran) and exit 128 + N."""
    click.echo(f"interrupted by {exc}: {what}", err=True)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rehabstats")
def cli() -> None:
    """rehabstats: outcome metrics and cohort reports for rehabilitation loading programmes."""


@cli.command()
@click.option(
    "--participants",
    "n_participants",
    type=click.IntRange(min=1, max=1_000_000_000),
    default=500,
    show_default=True,
    help="Number of participants to simulate.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed (same seed, same cohort).",
)
@click.option(
    "--out",
    "out",
    type=str,
    required=True,
    callback=lambda ctx, param, value: _out_target(value),
    help="Folder to write the cohort tables into (a new or empty folder, see --overwrite), or "
    "a database URL (postgresql://user@host/database, sqlite:///cohort.db; the password from "
    "PGPASSWORD or ~/.pgpass) to create the tables in.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "xlsx", "redcap"]),
    default=None,
    help="File format of the tables in a folder; redcap: a REDCap records export and its data "
    "dictionary (redcap_export.csv, redcap_dictionary.csv; docs/redcap.md).  [default: csv]",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a folder that is not empty, replacing only its cohort table files "
    "(participants.csv, sessions.parquet... in any format); other files are left untouched. "
    "In a database: replace the cohort tables rehabstats wrote there (never another table).",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help="Write a partitioned cohort of this many partitions (Parquet; hash of participant_id "
    "mod P; for --engine dask, docs/scale.md), simulated a chunk at a time; up to 1,000,000,000 "
    "participants.",
)
@_quiet_option
def simulate(
    n_participants: int,
    seed: int,
    out: Path | str,
    fmt: str | None,
    overwrite: bool,
    partitions: int | None = None,
    quiet: bool = False,
) -> None:
    """Write a realistic synthetic cohort (deterministic for a seed).

    The tables appear together, complete, or not at all; a folder that is not empty, or a
    database that holds tables of the cohort's names, is refused unless --overwrite.
    """
    from rehabstats.data.simulate import simulate_tables
    from rehabstats.errors import OutputError
    from rehabstats.files import Interrupted, unwind_on_signals

    database = isinstance(out, str)
    if partitions is not None:
        _simulate_partitioned(n_participants, seed, out, fmt, overwrite, partitions)
        return
    if n_participants > _MAX_SIMULATED:
        raise click.BadParameter(
            f"at most {_MAX_SIMULATED:,} without --partitions", param_hint="'--participants'"
        )
    if database and fmt is not None:
        raise click.BadParameter("applies to a folder, not to a database", param_hint="'--format'")
    progress = _progress(quiet)
    with unwind_on_signals():
        try:
            with progress.stage(f"simulating {n_participants:,} participants (seed {seed})"):
                tables = simulate_tables(n_participants, seed=seed)
            total = sum(len(t) for t in tables.values())
            progress.line(f"{total:,} rows in {len(tables)} tables; writing them to {out}")
            if database:
                from rehabstats.data.sources import resolve_env
                from rehabstats.data.sql import write_database

                url, why = resolve_env(out)
                if url is None:
                    raise OutputError(why or "")
                where = write_database(tables, url, overwrite=overwrite)
            elif fmt == "redcap":
                from rehabstats.data.redcap import write_redcap_export

                where = str(write_redcap_export(tables, out, overwrite=overwrite))
            else:
                from rehabstats.data.folder import write_cohort

                where = str(write_cohort(tables, out, format=fmt or "csv", overwrite=overwrite))
            progress.line("written")
        except OutputError as exc:
            raise click.ClickException(str(exc)) from None
        except Interrupted as exc:
            _interrupted(exc, f"{out} was left as it was (or holds the complete new cohort)")
    rows = ", ".join(f"{name} {len(t):,}" for name, t in tables.items())
    click.echo(f"wrote {n_participants:,} simulated participants (seed {seed}) to {where}: {rows}")


def _simulate_partitioned(
    n: int, seed: int, out: Path | str, fmt: str | None, overwrite: bool, partitions: int
) -> None:
    """``simulate --partitions``: a partitioned cohort folder (docs/scale.md)."""
    from rehabstats.data.partitioned import simulate_partitioned
    from rehabstats.errors import OutputError

    if isinstance(out, str) or fmt not in (None, "parquet") or overwrite:
        option = "--out" if isinstance(out, str) else "--format" if fmt else "--overwrite"
        raise click.BadParameter(
            "a partitioned cohort is Parquet files in a new or empty folder", param_hint=option
        )
    try:
        where = simulate_partitioned(n, out, n_partitions=partitions, seed=seed)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {n:,} simulated participants (seed {seed}) to {where} in {partitions} "
               "partitions")  # fmt: skip


@cli.command(epilog=_SOURCE_HELP)
@click.argument("data", type=_Source())
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    required=True,
    callback=lambda ctx, param, value: _out_folder(value),
    help="A new or empty folder for the partitioned cohort.",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1, max=100_000),
    required=True,
    help="Number of partitions P (a participant's rows go to hash(participant_id) mod P).",
)
@click.option(
    "--data-cutoff",
    type=_DATE,
    default=None,
    help="The cohort's cut-off to validate with YYYY-MM-DD (default: the latest date).",
)
def partition(data: str, out: Path, partitions: int, data_cutoff: str | None) -> None:
    """Convert a cohort (folder, database...) into a partitioned cohort for --engine dask.

    The source is validated first (as `rehabstats validate`); each participant's rows of every
    table go to the same partition (docs/scale.md).
    """
    from rehabstats.data.folder import load_cohort
    from rehabstats.data.partitioned import write_partitioned
    from rehabstats.errors import CohortValidationError, OutputError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            cohort = load_cohort(data, data_cutoff=data_cutoff)
    except CohortValidationError as exc:
        _exit_invalid(exc.source or data, exc.report, err=True)
    try:
        where = write_partitioned(cohort.tables, out, n_partitions=partitions)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"wrote {cohort.n_participants:,} participants of {cohort.source} to {where} in "
        f"{partitions} partitions"
    )


@cli.command("redcap-template")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV file to write the REDCap data dictionary into.",
)
@click.option("--overwrite", is_flag=True, help="Replace the file if it exists.")
def redcap_template(out: Path, overwrite: bool) -> None:
    """Write the REDCap project template: a data dictionary to import into a new project.

    One instrument per table of the data contract; make the six child instruments repeating
    (docs/redcap.md).
    """
    from rehabstats.data.redcap import write_redcap_template
    from rehabstats.errors import OutputError

    try:
        write_redcap_template(out, overwrite=overwrite)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote the REDCap data dictionary to {out}")


@cli.command(epilog=_SOURCE_HELP)
@click.argument("data", type=_Source())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format (json for machines).",
)
@click.option(
    "--data-cutoff",
    type=_DATE,
    default=None,
    help="Analysis date YYYY-MM-DD (default: the latest date in the data).",
)
@click.option(
    "--max-details",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Problems listed of each kind in the text output (0: the summary only; "
    "--format json lists them all).",
)
@_quiet_option
def validate(data: str, fmt: str, data_cutoff: str | None, max_details: int, quiet: bool) -> None:
    """Check a cohort (folder, database...) against the data contract.

    Exit 0 with a summary when valid; exit 1 when not, with a summary of the problems (per
    table, column and rule: count, rows, example values, how to fix them; the cause that
    explains the others first) and then every problem (table, row, column, value, rule).
    """
    from rehabstats.data.folder import load_cohort
    from rehabstats.errors import CohortValidationError
    from rehabstats.time.timeline import analysis_cutoff

    config = _analysis_config(None, data_cutoff)
    progress = _progress(quiet)
    cohort = None
    try:
        with warnings.catch_warnings(), progress.stage(f"reading and validating {data}"):
            warnings.simplefilter("ignore", DataWarning)
            cohort = load_cohort(data)
    except CohortValidationError as exc:
        report, where = exc.report, exc.source or data
    if cohort is None:
        progress.line(f"{len(report.unique_problems()):,} problems found")
        _exit_invalid(where, report, fmt=fmt, max_details=max_details)
    with progress.stage("summarising (data fingerprint)"):
        summary = cohort.summary(cutoff=analysis_cutoff(cohort, config))
        fingerprint = cohort.fingerprint()
    if fmt == "json":
        click.echo(json.dumps({"ok": True, "fingerprint": fingerprint, **summary}, indent=2))
        return
    click.echo(_summary_text(cohort.source, summary, fingerprint))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    """``1 participant``, ``2 participants``, ``1,234 rows`` (thousands separated)."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _summary_text(source: str, summary: dict, fingerprint: str) -> str:
    """The text summary of a valid cohort (``rehabstats validate``): each fact once."""
    n = int(summary["participants"])  # type: ignore[call-overload]
    lines = [f"{source}: valid, {_plural(n, 'participant')}"]
    width = max(len(name) for name in summary["rows"]) + 2
    digits = max(len(f"{rows:,}") for rows in summary["rows"].values())
    for name, rows in summary["rows"].items():
        what = f"{rows:>{digits},} {'row' if rows == 1 else 'rows'}" if rows else "no rows"
        lines.append(f"  {name + ':':<{width}}{what}")
    if summary["first_date"] is not None:
        lines.append(
            f"  dates: {summary['first_date']} to {summary['last_date']}"
            f" (data cut-off {summary['data_cutoff']})"
        )
    sites, arms = summary["sites"], summary["arms"]
    lines.append(
        f"  {_plural(len(sites), 'site')}: {', '.join(map(str, sites))}; "
        f"{_plural(len(arms), 'arm')}: {', '.join(map(str, arms))}"
    )
    lines.append(f"  fingerprint: {fingerprint}")
    lines += [f"  warning: {message}" for message in dict.fromkeys(summary["warnings"])]
    return "\n".join(lines)


@cli.command(epilog=_SOURCE_HELP)
@click.argument("data", type=_Source())
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    required=True,
    callback=lambda ctx, param, value: _out_folder(value),
    help="Folder to write the metric CSV files into (created if missing; the files of an "
    "earlier run are replaced, other files left alone).",
)
@click.option(
    "--by",
    type=str,
    default=None,
    metavar="COLUMN",
    help="Participants column to compare groups by: site, arm, tendinopathy_type, sex or any "
    "other column of the participants table (every participant needs a value) "
    "[default: one group, 'all'].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file overriding analysis thresholds.",
)
@click.option(
    "--data-cutoff",
    type=_DATE,
    default=None,
    help="Analysis date YYYY-MM-DD (default: the configuration's, else the latest "
    "date in the data).",
)
@click.option(
    "--model/--no-model",
    default=True,
    show_default=True,
    help="Fit the pain trajectory mixed model (seconds at 100,000 participants).",
)
@click.option(
    "--engine",
    type=click.Choice(["pandas", "dask"]),
    default="pandas",
    show_default=True,
    help="dask: a partitioned cohort (rehabstats partition) on a Dask cluster, one partition "
    "per task (docs/scale.md; needs rehabstats[dask]).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="--engine dask: the Dask scheduler to use (tcp://host:8786); default a local cluster "
    "of one single-threaded worker per core.",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["csv", "parquet", "text", "json"]),
    multiple=True,
    help="The files' format, csv (default) or parquet (typed, smaller, for large cohorts); and "
    "what is printed, text (default: a line per run) or json (for machines: the files written "
    "with their rows and columns, the cohort and every data note). Repeat to give both, e.g. "
    "--format parquet --format json.",
)
@_quiet_option
def metrics(
    data: str,
    out: Path,
    by: str | None,
    config_path: Path | None,
    data_cutoff: str | None,
    model: bool,
    formats: tuple[str, ...] = (),
    quiet: bool = False,
    engine: str = "pandas",
    scheduler: str | None = None,
) -> None:
    """Compute every metric of a cohort (folder, database...) and write them as CSV files.

    \b
    Files written into OUT (docs/metrics.md defines every column):
      participant_metrics.csv    one row per participant: adherence, pain, VISA-A,
                                 stages, checkpoint, relapse, exercise quality, running
      weekly_metrics.csv         one row per participant and week of the 12-week window
      time_to_stage.csv          Kaplan-Meier curves of the time to stages 2-4, per group
      time_to_stage_summary.csv  medians and the proportion in stage 4 by week 12, with CIs
      relapse_rates.csv          relapses per 1,000 person-weeks at risk, exact CIs
      relapse_incidence.csv      cumulative incidence of relapse by week (Aalen-Johansen)
      pain_model.csv             the pain trajectory mixed model (not with --no-model)
      stage_occupancy.csv        share of participants in each stage, week by week
      relapse_acwr.csv           relapse rates with and without running-load spikes

    Per-group files have one set of rows per value of --by (without it, one group: 'all').
    With --format parquet the same tables are written as .parquet files.
    """
    file_format, fmt = _metrics_formats(formats)
    if engine == "dask" or scheduler is not None:
        if engine != "dask":
            raise click.BadParameter("needs --engine dask", param_hint="'--scheduler'")
        if file_format != "csv" or fmt != "text":
            raise click.BadParameter(
                "--engine dask writes CSV files and prints text (not available there yet)",
                param_hint="'--format'",
            )
        _metrics_dask(data, out, by, _analysis_config(config_path, data_cutoff), model, scheduler)
        return
    from rehabstats.data.folder import load_cohort
    from rehabstats.errors import CohortValidationError, OutputError, ParameterError
    from rehabstats.files import Interrupted, unwind_on_signals
    from rehabstats.metrics.outputs import OUTPUT_FILES, write_metrics
    from rehabstats.time.timeline import check_group_by

    config = _analysis_config(config_path, data_cutoff)
    progress = _progress(quiet)
    shape: dict[str, tuple[int, int]] = {}

    def computed(name: str, frame: object) -> None:
        shape[name] = getattr(frame, "shape", (0, 0))
        progress.advance(name)

    with warnings.catch_warnings(record=True) as caught, unwind_on_signals():
        warnings.simplefilter("always", DataWarning)
        try:
            with progress.stage(f"reading and validating {data}"):
                cohort = load_cohort(data)
        except CohortValidationError as exc:
            _exit_invalid(exc.source or data, exc.report, fmt=fmt, err=fmt != "json")
        if by is not None:
            try:
                check_group_by(cohort.participants, by)
            except ParameterError as exc:
                raise click.BadParameter(str(exc), param_hint="'--by'") from None
        n_files = sum(1 for n in OUTPUT_FILES if n != "pain_model.csv" or model)
        progress.line(f"{cohort.n_participants:,} participants; computing {n_files} metric files")
        progress.start_bar(n_files, "metrics", unit="file")
        try:
            written = write_metrics(
                cohort,
                out,
                by=by,
                config=config,
                model=model,
                format=file_format,
                on_computed=computed,
            )
        except OutputError as exc:
            raise click.ClickException(str(exc)) from None
        except Interrupted as exc:
            _interrupted(exc, "no metric file was replaced")
        finally:
            progress.end_bar()
        progress.line(f"wrote {len(written)} files")
    # every metric repeats the data notes of the cut-off: each is shown once
    notes = list(
        dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DataWarning))
    )
    if fmt == "json":
        from rehabstats.time.timeline import analysis_cutoff

        doc = {
            "ok": True,
            "out": str(out.resolve()),
            "source": cohort.source,
            "fingerprint": cohort.fingerprint(),
            "participants": cohort.n_participants,
            "data_cutoff": analysis_cutoff(cohort, config).date().isoformat(),
            "by": by,
            "model": model,
            "files": [
                {
                    "name": p.name,
                    "path": str(p),
                    "rows": shape[Path(p.name).with_suffix(".csv").name][0],
                    "columns": shape[Path(p.name).with_suffix(".csv").name][1],
                }
                for p in written
            ],  # fmt: skip
            "notes": notes,
            "seconds": round(progress.elapsed, 3),
        }
        click.echo(json.dumps(doc, indent=2))
        return
    for message in notes:
        click.echo(f"warning: {message}", err=True)
    click.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}")


def _metrics_formats(formats: tuple[str, ...]) -> tuple[str, str]:
    """``metrics --format``: (the files' format, what is printed) from the values given."""
    files_given = [f for f in formats if f in ("csv", "parquet")]
    printed = [f for f in formats if f in ("text", "json")]
    for given, what in ((files_given, "file format (csv or parquet)"),
                        (printed, "output (text or json)")):  # fmt: skip
        if len(set(given)) > 1:
            raise click.BadParameter(f"give one {what}, not {' and '.join(given)}",
                                     param_hint="'--format'")  # fmt: skip
    return (files_given or ["csv"])[0], (printed or ["text"])[0]


def _metrics_dask(
    data: str, out: Path, by: str | None, config: AnalysisConfig, model: bool, scheduler
) -> None:
    """``metrics --engine dask``: rehabstats.metrics.distributed on a Dask client."""
    from rehabstats.errors import CohortValidationError, OutputError
    from rehabstats.metrics.distributed import dask_client, require_dask, write_metrics_dask

    require_dask()  # a clear message (how to install it) before anything else
    shown: list[str] = []
    try:
        with dask_client(scheduler):
            written = write_metrics_dask(
                data, out, by=by, config=config, model=model, on_warning=shown.append
            )
    except CohortValidationError as exc:
        _exit_invalid(exc.source or data, exc.report, err=True)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    for message in shown:
        click.echo(f"warning: {message}", err=True)
    click.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}")


def _engine_parameters(values: dict, engine: str | None, scheduler: str | None) -> None:
    """``report --engine/--scheduler`` as the report parameters ``engine`` and ``scheduler``;
    with the Dask engine, dask must be installed (the one-line message of ``metrics``)."""
    if engine is not None:
        values["engine"] = engine
    if scheduler is not None:
        values["scheduler"] = scheduler
    if str(values.get("engine", "")).strip().lower() == "dask":
        from rehabstats.errors import ParameterError
        from rehabstats.metrics.distributed import require_dask

        try:
            require_dask()
        except ParameterError as exc:
            raise click.ClickException(str(exc)) from None


def _report_epilog() -> str:
    """The parameters of every report, for ``rehabstats report --help``."""
    from rehabstats.report.specs import REPORTS

    lines = ["Report parameters (-p NAME VALUE; 'none' for None):"]
    for name, spec in REPORTS.items():
        lines += ["", "\b", f"{name}: {spec.description}"]
        for p in spec.parameters:
            if p.name in ("data", "demo_participants", "demo_seed"):
                continue
            lines.append(f"  {p.name} = {p.default!r}  ({p.describe_type()}) {p.help}")
    return "\n".join(lines)


@cli.command(epilog=_report_epilog())
@click.argument("data", type=_Source(exists=True))
@click.option(
    "--notebook",
    "-n",
    "notebook",
    type=click.Choice(report_names()),
    required=True,
    help="Which report to render.",
)
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="HTML file to write; the executed notebook is kept beside it (.ipynb).",
)
@click.option(
    "-p",
    "--parameter",
    "parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A report parameter (repeatable), validated before anything runs.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar over the notebook's cells [default: only on a terminal].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "pdf"]),
    default="html",
    show_default=True,
    help="pdf: also print the report to a PDF (A4, its print layout) beside the HTML with "
    "headless Chromium (or Chrome; REHABSTATS_CHROMIUM names another). --out may then end "
    "in .pdf.",
)
@click.option(
    "--engine",
    type=click.Choice(["pandas", "dask"]),
    default=None,
    help="dask: DATA is a partitioned cohort (rehabstats partition); its metrics are computed "
    "on a Dask cluster and the report drawn here (docs/scale.md; needs rehabstats[dask]). "
    "The same as -p engine dask.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="--engine dask: the Dask scheduler (tcp://host:8786); default "
    "REHABSTATS_DASK_SCHEDULER, else a local cluster of one worker per core.",
)
def report(
    data: str,
    notebook: str,
    out: Path,
    parameters: tuple[tuple[str, str], ...],
    progress: bool | None,
    fmt: str,
    engine: str | None = None,
    scheduler: str | None = None,
) -> None:
    """Render a report notebook on the cohort DATA into one self-contained HTML file.

    DATA is a cohort folder, a database URL (postgresql://user@host/database; the password
    from PGPASSWORD or ~/.pgpass), a database mapping file or env:NAME (docs/databases.md),
    or a REDCap export or API address (the token in REHABSTATS_REDCAP_TOKEN; docs/redcap.md).
    The HTML makes no network request (no CDN, figures embedded) and shows no code; it opens
    offline in any browser.
    """
    from rehabstats.errors import CohortValidationError, OutputError, ParameterError
    from rehabstats.files import Interrupted, unwind_on_signals
    from rehabstats.report.render import RenderError, render_report
    from rehabstats.report.specs import parse_parameter_pairs

    pdf_path = None
    if fmt == "pdf" or out.suffix.lower() == ".pdf":
        from rehabstats.report.pdf import PdfError, check_chromium

        try:
            check_chromium()  # before any kernel starts
        except PdfError as exc:
            raise click.ClickException(str(exc)) from None
        pdf_path = out if out.suffix.lower() == ".pdf" else out.with_suffix(".pdf")
        out = out.with_suffix(".html")
    with unwind_on_signals():
        try:
            values = parse_parameter_pairs(parameters)
            _engine_parameters(values, engine, scheduler)
            result = render_report(notebook, data, out=out, parameters=values, progress=progress)
            if pdf_path is not None:
                from rehabstats.report.pdf import print_pdf

                pdf_path = print_pdf(result.html_path, pdf_path, render_id=result.render_id)
        except ParameterError as exc:
            raise click.UsageError(str(exc)) from None
        except CohortValidationError as exc:  # before any kernel started
            _exit_invalid(exc.source or data, exc.report, err=True)
        except (RenderError, OutputError) as exc:
            raise click.ClickException(str(exc)) from None
        except RehabstatsError as exc:  # the PDF (after the HTML was written)
            raise click.ClickException(str(exc)) from None
        except Interrupted as exc:
            _interrupted(exc, "the kernel was stopped; an earlier report is left as it was")
    click.echo(
        f"wrote {result.html_path} and {result.notebook_path.name} in {result.seconds:.1f} s "
        f"(data fingerprint {str(result.fingerprint)[:12]})"
    )
    if pdf_path is not None:
        click.echo(f"wrote {pdf_path}")


@cli.command(
    epilog="Arguments after -- go to JupyterLab, e.g. -- --no-browser --port 8890. "
    "docs/interactive.md shows the library in a notebook of your own.",
    context_settings={"ignore_unknown_options": False},
)
@click.argument("data", type=_Source(exists=True), required=False)
@click.option(
    "--notebook",
    "-n",
    "notebook",
    type=click.Choice(report_names()),
    default="cohort_report",
    show_default=True,
    help="Which report notebook to copy.",
)
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The notebook file to write [default: NOTEBOOK.ipynb in the current folder]; an "
    "existing file is never replaced.",
)
@click.option(
    "-p",
    "--parameter",
    "parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A report parameter (repeatable), as for rehabstats report.",
)
@click.option("--no-lab", is_flag=True, help="Write the notebook only; print how to open it.")
@click.argument("lab_args", nargs=-1, type=click.UNPROCESSED)
def notebook(
    data: str | None,
    notebook: str,
    out: Path | None,
    parameters: tuple[tuple[str, str], ...],
    no_lab: bool,
    lab_args: tuple[str, ...],
) -> None:
    """Open JupyterLab on a copy of a report notebook pointed at the cohort DATA.

    The copy has DATA (and any -p parameter) set in the cell after its parameters cell and
    uses a kernel of this Python environment (the one rehabstats is installed in). Without
    DATA it uses the simulated demo cohort. Run the cells, change a parameter, add your own.
    """
    import subprocess

    from rehabstats.errors import OutputError, ParameterError
    from rehabstats.files import (
        Interrupted,
        make_workdir,
        remove_workdir,
        sweep_workdirs,
        unwind_on_signals,
    )
    from rehabstats.report.interactive import lab_command, lab_environment, notebook_copy
    from rehabstats.report.specs import parse_parameter_pairs

    target = out if out is not None else Path(f"{notebook}.ipynb")
    try:
        values = parse_parameter_pairs(parameters)
        written = notebook_copy(notebook, data, target, parameters=values)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {written}")
    if no_lab:
        click.echo(f"open it with: {sys.executable} -m jupyter lab {written}")
        return
    sweep_workdirs("rehabstats-kernels-")  # what a killed earlier run left
    kernels = make_workdir("rehabstats-kernels-")
    code = 0
    try:
        command = [*lab_command(written, kernels), *lab_args]
        click.echo("starting JupyterLab (Ctrl-C to stop it) ...", err=True)
        lab = subprocess.Popen(command, env=lab_environment(kernels))
        try:
            with unwind_on_signals():
                code = lab.wait()
        except (KeyboardInterrupt, Interrupted) as exc:  # stop JupyterLab with this command
            lab.terminate()
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:
                lab.kill()
            code = getattr(exc, "exit_code", 130)
    finally:
        remove_workdir(kernels)
    sys.exit(code)


@cli.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default="reports",
    show_default=True,
    callback=lambda ctx, param, value: _out_folder(value),
    help="Folder to write the reports into.",
)
@click.option(
    "--participants",
    "n_participants",
    type=click.IntRange(min=20),
    default=None,
    help="Size of the simulated demo cohort [default: the reports' default, 500].",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Seed of the demo cohort [default: 0]."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars [default: only on a terminal].",
)
def demo(out: Path, n_participants: int | None, seed: int | None, progress: bool | None) -> None:
    """Simulate the demo cohort and render every report on it into OUT (reports/)."""
    from rehabstats.errors import OutputError
    from rehabstats.files import Interrupted, unwind_on_signals
    from rehabstats.report.render import RenderError, render_demo

    with unwind_on_signals():
        try:
            results = render_demo(out, participants=n_participants, seed=seed, progress=progress)
        except (RenderError, OutputError) as exc:
            raise click.ClickException(str(exc)) from None
        except Interrupted as exc:
            _interrupted(exc, "the kernels were stopped; earlier reports are left as they were")
    for r in results:
        click.echo(f"wrote {r.html_path} ({r.seconds:.1f} s)")


@cli.command()
@click.argument("jobs", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Reports rendered at once, each in its own process and kernel "
    "[default: the job file's workers, else half the CPUs, at most 4].",
)
@click.option(
    "--reports-per-kernel",
    "reports_per_kernel",
    type=click.IntRange(min=1),
    default=None,
    help="Reports a worker renders in one kernel (reset between reports) before starting a new "
    "one; 1 = a new kernel for every report [default: the job file's reports_per_kernel, "
    "else 20]. A failed or timed-out report always gets a new kernel next.",
)
@click.option("--force", is_flag=True, help="Re-render reports that are up to date.")
@click.option(
    "--wait", is_flag=True, help="Wait for another run holding the lock instead of exiting 75."
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this job (all its fanned-out reports) or one report NAME:VALUE; repeatable. "
    "Runs a job disabled with enabled: false.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the job file and every report's data, parameters, output and pseudonym key as "
    "the real run would, and show the plan with every problem; render nothing.",
)
@_quiet_option
def batch(
    jobs: Path,
    workers: int | None,
    reports_per_kernel: int | None,
    force: bool,
    wait: bool,
    only: tuple[str, ...],
    dry_run: bool,
    quiet: bool,
) -> None:
    """Render the reports of a job file (YAML), in parallel, atomically and incrementally.

    Up-to-date reports are skipped; a failing job does not stop the others. Writes a manifest
    per report and index.html in the output folder. docs/batch.md describes the job file.

    Exit status: 0 all rendered or up to date; 1 a job failed; 2 invalid job file; 75 another
    run holds the lock; 128+N stopped by signal N.
    """
    import re

    from rehabstats.batch import EXIT_INVALID, EXIT_LOCKED, run_batch

    progress = _progress(quiet)

    def echo(line: str) -> None:
        # the run's own lines (stdout, the log of a scheduled run) drive the bar on a terminal:
        # "rehabstats batch F: N reports - M to render, ..." then "[k/N] name: status ..."
        progress.echo(line)
        planned = re.match(r"rehabstats batch .*?: (\d+) reports? - (\d+) to render", line)
        if planned and int(planned[1]):
            progress.start_bar(int(planned[1]), "reports", unit="report")
        elif re.match(r"\[\d+/\d+\] ", line):
            progress.advance(line.split("] ", 1)[1].split(":", 1)[0])

    try:
        with progress.stage(f"checking {jobs} and planning" if dry_run else f"running {jobs}"):
            try:
                result = run_batch(
                    jobs, workers=workers, force=force, wait=wait, only=only, dry_run=dry_run,
                    echo=echo, reports_per_kernel=reports_per_kernel,
                )  # fmt: skip
            finally:
                progress.end_bar()
    except JobFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    except BatchLockedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    except KeyboardInterrupt:  # before or after the renders (during them the run stops itself)
        click.echo("interrupted: reports already moved into place are complete", err=True)
        sys.exit(130)
    click.echo("")
    click.echo(result.summary_table())
    for r in result.results:
        if r.status == "failed" and r.error:
            click.echo(f"\n{r.name} failed: {r.error['message'][:2000].rstrip()}")
            if r.failed_notebook is not None:
                click.echo(f"  failed notebook: {r.failed_notebook}")
            if r.previous_report:
                click.echo(f"  the previous report (from {r.previous_report}) is unchanged")
    counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n)
    where = f"; index {result.index}" if result.index else " (dry run: nothing written)"
    click.echo(f"\n{counts or 'nothing to do'} in {result.seconds:.1f} s{where}")
    if result.interrupted:
        click.echo(f"stopped by {result.interrupted}", err=True)
    sys.exit(result.exit_code)


def main() -> None:
    """Entry point of the console script."""
    skip_iri_grammars()
    try:
        cli(standalone_mode=True)
    except RehabstatsError as exc:  # pragma: no cover - click handles exit codes
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # a file or folder the command could not use
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
