"""The ``rehabstats`` command (also ``python -m rehabstats``)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import click

from rehabstats.errors import DataWarning, RehabstatsError

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rehabstats")
def cli() -> None:
    """rehabstats: outcome metrics and cohort reports for rehabilitation loading programmes."""


@cli.command()
@click.option(
    "--participants",
    "n_participants",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Number of participants to simulate.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same cohort)."
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write the cohort tables into (replaced atomically).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "xlsx"]),
    default="csv",
    show_default=True,
    help="File format of the tables.",
)
def simulate(n_participants: int, seed: int, out: Path, fmt: str) -> None:
    """Write a realistic synthetic cohort (deterministic for a seed)."""
    from rehabstats.io import write_cohort
    from rehabstats.simulate import simulate_tables

    tables = simulate_tables(n_participants, seed=seed)
    write_cohort(tables, out, format=fmt)
    rows = ", ".join(f"{name} {len(t):,}" for name, t in tables.items())
    click.echo(f"wrote {n_participants:,} simulated participants (seed {seed}) to {out}: {rows}")


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
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
    type=str,
    default=None,
    help="Analysis date YYYY-MM-DD (default: the latest date in the data).",
)
def validate(data: Path, fmt: str, data_cutoff: str | None) -> None:
    """Check a cohort folder against the data contract.

    Exit 0 with a summary when valid; exit 1 with every problem (table, row, column, value,
    rule) when not.
    """
    from rehabstats.cohort import Cohort
    from rehabstats.io import read_tables

    raw, offsets, report = read_tables(data)
    cohort = None
    if report.ok:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            try:
                cohort = Cohort.from_tables(
                    raw, data_cutoff=data_cutoff, source=str(data), row_offset=offsets
                )
            except RehabstatsError as exc:
                report = getattr(exc, "report", report)
    if cohort is None:
        if fmt == "json":
            click.echo(report.to_json())
        else:
            n = len(report.problems)
            click.echo(f"{data}: INVALID - {n} problem{'s' if n != 1 else ''}", err=False)
            click.echo(report.format_table(max_rows=None))
        sys.exit(1)
    summary = cohort.summary()
    if fmt == "json":
        click.echo(
            json.dumps({"ok": True, "fingerprint": cohort.fingerprint(), **summary}, indent=2)
        )
        return
    click.echo(f"{data}: valid")
    click.echo(f"  participants: {summary['participants']:,}")
    for name, n in summary["rows"].items():
        click.echo(f"  {name + ':':<16}{n:>12,} rows")
    click.echo(
        f"  dates: {summary['first_date']} to {summary['last_date']}"
        f" (data cut-off {summary['data_cutoff']})"
    )
    click.echo(f"  sites: {', '.join(summary['sites'])}; arms: {', '.join(summary['arms'])}")
    click.echo(f"  fingerprint: {cohort.fingerprint()}")
    for message in summary["warnings"]:
        click.echo(f"  warning: {message}")


def main() -> None:
    """Entry point of the console script."""
    try:
        cli(standalone_mode=True)
    except RehabstatsError as exc:  # pragma: no cover - click handles exit codes
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
