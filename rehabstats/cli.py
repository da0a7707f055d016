"""The ``rehabstats`` command (also ``python -m rehabstats``)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from rehabstats.errors import BatchLockedError, DataWarning, JobFileError, RehabstatsError
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
def simulate(
    n_participants: int,
    seed: int,
    out: Path | str,
    fmt: str | None,
    overwrite: bool,
    partitions: int | None = None,
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
    with unwind_on_signals():
        try:
            tables = simulate_tables(n_participants, seed=seed)
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
def validate(data: str, fmt: str, data_cutoff: str | None, max_details: int) -> None:
    """Check a cohort (folder, database...) against the data contract.

    Exit 0 with a summary when valid; exit 1 when not, with a summary of the problems (per
    table, column and rule: count, rows, example values, how to fix them; the cause that
    explains the others first) and then every problem (table, row, column, value, rule).
    """
    from rehabstats.data.folder import load_cohort
    from rehabstats.errors import CohortValidationError
    from rehabstats.time.timeline import analysis_cutoff

    config = _analysis_config(None, data_cutoff)
    cohort = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            cohort = load_cohort(data)
    except CohortValidationError as exc:
        report, where = exc.report, exc.source or data
    if cohort is None:
        _exit_invalid(where, report, fmt=fmt, max_details=max_details)
    summary = cohort.summary(cutoff=analysis_cutoff(cohort, config))
    if fmt == "json":
        click.echo(
            json.dumps({"ok": True, "fingerprint": cohort.fingerprint(), **summary}, indent=2)
        )
        return
    click.echo(f"{cohort.source}: valid")
    click.echo(f"  participants: {summary['participants']:,}")
    for name, n in summary["rows"].items():
        click.echo(f"  {name + ':':<16}{n:>12,} {'row' if n == 1 else 'rows'}")
    if summary["first_date"] is not None:
        click.echo(
            f"  dates: {summary['first_date']} to {summary['last_date']}"
            f" (data cut-off {summary['data_cutoff']})"
        )
    click.echo(f"  sites: {', '.join(summary['sites'])}; arms: {', '.join(summary['arms'])}")
    click.echo(f"  fingerprint: {cohort.fingerprint()}")
    for message in dict.fromkeys(summary["warnings"]):
        click.echo(f"  warning: {message}")


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
    type=click.Choice(["site", "arm", "tendinopathy_type", "sex"]),
    default=None,
    help="Participant column to compare groups by (default: all).",
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
    "file_format",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="File format of the metric tables (parquet: typed, smaller, for large cohorts).",
)
def metrics(
    data: str,
    out: Path,
    by: str | None,
    config_path: Path | None,
    data_cutoff: str | None,
    model: bool,
    engine: str = "pandas",
    scheduler: str | None = None,
    file_format: str = "csv",
) -> None:
    """Compute every metric of a cohort (folder, database...) and write the §9 CSV files."""
    if engine == "dask" or scheduler is not None:
        if engine != "dask":
            raise click.BadParameter("needs --engine dask", param_hint="'--scheduler'")
        if file_format != "csv":
            raise click.BadParameter(
                "--engine dask writes CSV files (Parquet output is not available there yet)",
                param_hint="'--format'",
            )
        _metrics_dask(data, out, by, _analysis_config(config_path, data_cutoff), model, scheduler)
        return
    from rehabstats.data.folder import load_cohort
    from rehabstats.errors import CohortValidationError, OutputError
    from rehabstats.files import Interrupted, unwind_on_signals
    from rehabstats.metrics.outputs import write_metrics

    config = _analysis_config(config_path, data_cutoff)
    with warnings.catch_warnings(record=True) as caught, unwind_on_signals():
        warnings.simplefilter("always", DataWarning)
        try:
            cohort = load_cohort(data)
        except CohortValidationError as exc:
            _exit_invalid(exc.source or data, exc.report, err=True)
        try:
            written = write_metrics(
                cohort, out, by=by, config=config, model=model, format=file_format
            )
        except OutputError as exc:
            raise click.ClickException(str(exc)) from None
        except Interrupted as exc:
            _interrupted(exc, "no metric file was replaced")
    # every metric repeats the data notes of the cut-off: each is shown once
    for message in dict.fromkeys(
        str(w.message) for w in caught if issubclass(w.category, DataWarning)
    ):
        click.echo(f"warning: {message}", err=True)
    click.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}")


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
def report(
    data: str,
    notebook: str,
    out: Path,
    parameters: tuple[tuple[str, str], ...],
    progress: bool | None,
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

    with unwind_on_signals():
        try:
            values = parse_parameter_pairs(parameters)
            result = render_report(notebook, data, out=out, parameters=values, progress=progress)
        except ParameterError as exc:
            raise click.UsageError(str(exc)) from None
        except CohortValidationError as exc:  # before any kernel started
            _exit_invalid(exc.source or data, exc.report, err=True)
        except (RenderError, OutputError) as exc:
            raise click.ClickException(str(exc)) from None
        except Interrupted as exc:
            _interrupted(exc, "the kernel was stopped; an earlier report is left as it was")
    click.echo(
        f"wrote {result.html_path} and {result.notebook_path.name} in {result.seconds:.1f} s "
        f"(data fingerprint {str(result.fingerprint)[:12]})"
    )


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
    "--dry-run", is_flag=True, help="Check the job file and show the plan; render nothing."
)
def batch(
    jobs: Path, workers: int | None, force: bool, wait: bool, only: tuple[str, ...], dry_run: bool
) -> None:
    """Render the reports of a job file (YAML), in parallel, atomically and incrementally.

    Up-to-date reports are skipped; a failing job does not stop the others. Writes a manifest
    per report and index.html in the output folder. docs/batch.md describes the job file.

    Exit status: 0 all rendered or up to date; 1 a job failed; 2 invalid job file; 75 another
    run holds the lock; 128+N stopped by signal N.
    """
    from rehabstats.batch import EXIT_INVALID, EXIT_LOCKED, run_batch

    def echo(line: str) -> None:
        click.echo(line)

    try:
        result = run_batch(
            jobs, workers=workers, force=force, wait=wait, only=only, dry_run=dry_run, echo=echo
        )
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
    try:
        cli(standalone_mode=True)
    except RehabstatsError as exc:  # pragma: no cover - click handles exit codes
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # a file or folder the command could not use
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
