"""Partitioned cohorts: one cohort folder of Parquet tables per partition, participants whole.

A partitioned cohort is a folder holding ``partitions.json`` (the manifest) and one folder per
partition, ``part-00000`` ... ``part-<P-1>``, each a cohort folder of Parquet tables
(``participants.parquet``, ``sessions.parquet``...) that :func:`rehabstats.load_cohort` reads.
Every row of every table sits in the partition of its participant::

    partition = hash(participant_id) mod P

with ``hash`` pandas' stable 64-bit SipHash of the id text (:func:`pandas.util.hash_array`,
fixed key; the same on every machine and version), so each partition is a complete cohort of
its participants and the per-participant metrics need no exchange between partitions
(``docs/scale.md``). The manifest is written last: a folder without it is not a partitioned
cohort (a killed write is never read as a complete one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rehabstats.data.schema import TABLES, table_spec
from rehabstats.errors import OutputError, Problem

__all__ = [
    "MANIFEST",
    "PartitionedCohort",
    "combined_fingerprint",
    "is_partitioned",
    "open_partitioned",
    "partition_of",
    "partition_summary",
    "placement_problems",
    "simulate_partitioned",
    "write_partitioned",
]

MANIFEST = "partitions.json"
FORMAT = "rehabstats-partitioned"
HASH = "pandas.util.hash_array(participant_id as text) mod partitions"
SIMULATION_CHUNK = 20_000
"""Participants simulated at a time by :func:`simulate_partitioned`."""


def partition_of(participant_id: Iterable[object], n_partitions: int) -> np.ndarray:
    """The partition of each participant id: ``hash_array(id as text) mod n_partitions``.

    Parameters
    ----------
    participant_id : array-like
        Ids (as text; a missing id hashes as the text ``"nan"`` would not: it is refused by
        validation before it matters).
    n_partitions : int
        P >= 1.

    Returns
    -------
    ndarray of int64
    """
    ids = np.asarray(pd.Series(participant_id, dtype="object").astype("str"), dtype=object)
    return (pd.util.hash_array(ids, categorize=True) % np.uint64(n_partitions)).astype("int64")


def part_name(index: int) -> str:
    """The folder of partition ``index`` (``part-00003``)."""
    return f"part-{index:05d}"


@dataclass(frozen=True)
class PartitionedCohort:
    """A partitioned cohort on disk (read from its manifest; nothing is loaded).

    Attributes
    ----------
    folder : Path
    n_partitions : int
    participants : list of int
        Participants in each partition.
    rows : dict of str to list of int
        Rows of each table in each partition.
    latest_date : str or None
        The latest date in any table of any partition (ISO): the cohort's default cut-off, as
        :attr:`rehabstats.Cohort.data_cutoff` of the whole cohort.
    """

    folder: Path
    n_partitions: int
    participants: list[int]
    rows: dict[str, list[int]]
    latest_date: str | None

    def path(self, index: int) -> Path:
        """The cohort folder of partition ``index``."""
        return self.folder / part_name(index)

    @property
    def n_participants(self) -> int:
        return int(sum(self.participants))

    @property
    def non_empty(self) -> list[int]:
        """Partitions holding at least one participant (the others hold no rows at all)."""
        return [i for i, n in enumerate(self.participants) if n > 0]


def is_partitioned(source: object) -> bool:
    """Whether ``source`` is a folder holding a partitioned cohort's manifest."""
    try:
        return (Path(os.fspath(source)) / MANIFEST).is_file()  # type: ignore[arg-type]
    except TypeError:
        return False


def open_partitioned(folder: str | os.PathLike) -> PartitionedCohort:
    """Read a partitioned cohort's manifest.

    Raises
    ------
    OutputError
        Not a partitioned cohort (no or an unreadable manifest) or a partition folder is
        missing.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(
            f"{folder} is not a partitioned cohort (no readable {MANIFEST}: {exc}); write one "
            "with `rehabstats partition SOURCE --out DIR --partitions P`"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OutputError(f"{folder / MANIFEST} is not a rehabstats partition manifest")
    cohort = PartitionedCohort(
        folder=folder,
        n_partitions=int(manifest["partitions"]),
        participants=[int(n) for n in manifest["participants"]],
        rows={k: [int(n) for n in v] for k, v in manifest["rows"].items()},
        latest_date=manifest.get("latest_date"),
    )
    missing = [part_name(i) for i in cohort.non_empty if not cohort.path(i).is_dir()]
    if missing:
        raise OutputError(f"{folder} lacks partition folder(s) {', '.join(missing[:5])}")
    return cohort


def placement_problems(participant_id: pd.Series, index: int, n_partitions: int) -> list[Problem]:
    """The cross-partition rule: every participant sits in the partition of its id's hash.

    With it, a participant id unique within each partition (the contract's rule, checked there)
    is unique in the whole cohort, and every row of a participant is in one partition.
    """
    expected = partition_of(participant_id, n_partitions)
    wrong = np.flatnonzero(expected != index)
    return [
        Problem(
            table="participants",
            row=int(i) + 1,
            column="participant_id",
            value=str(participant_id.iloc[i]),
            rule=(
                f"in partition {index} of {n_partitions}, but hash(participant_id) mod "
                f"{n_partitions} = {expected[i]}: a participant belongs to one partition only "
                "(partitioned cohorts are written by `rehabstats partition`)"
            ),
            code="unique",
            where=f"{part_name(index)}/participants.parquet",
        )
        for i in wrong
    ]


def combined_fingerprint(fingerprints: Iterable[str]) -> str:
    """The fingerprint of a partitioned cohort: SHA-256 of its non-empty partitions'
    :meth:`rehabstats.Cohort.fingerprint`, concatenated in partition order.

    Equal for the same partitions (a report's data fingerprint with the Dask engine, and the
    key by which a batch skips that report when unchanged); not the fingerprint of the same
    tables in one folder (their rows are in another order).
    """
    return hashlib.sha256("".join(fingerprints).encode()).hexdigest()


def partition_summary(
    folder: str | os.PathLike, index: int, columns: Iterable[str] = ()
) -> dict[str, object]:
    """Load and validate partition ``index`` (on a worker) and return what a plan needs.

    Returns
    -------
    dict
        ``problems`` (validation problems, each placed in its partition file, and the
        placement rule); when there are none, ``fingerprint`` (of the partition's cohort),
        ``participants`` (count) and ``values``: the sorted distinct values (as text, missing
        values left out) of each participant column in ``columns``.
    """
    from rehabstats.data.folder import load_cohort
    from rehabstats.errors import CohortValidationError

    part = open_partitioned(folder)
    name = part_name(index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data notes are the report's to show
        try:
            cohort = load_cohort(part.path(index))
        except CohortValidationError as exc:
            return {
                "problems": [
                    p if p.where else dataclasses.replace(p, where=f"{name}/{p.table}.parquet")
                    for p in exc.report.problems
                ]
            }
    ids = cohort.participants["participant_id"]
    problems = placement_problems(ids, index, part.n_partitions)
    if problems:
        return {"problems": problems}
    people = cohort.participants
    return {
        "problems": [],
        "fingerprint": cohort.fingerprint(),
        "participants": len(people),
        "values": {
            c: sorted(people[c].dropna().astype("str").unique().tolist()) for c in set(columns)
        },
    }


class _Writer:
    """Appends chunks of a cohort's tables to P partitions (one Parquet file per table and
    partition, written row group by row group: memory holds one chunk)."""

    def __init__(self, folder: Path, n_partitions: int) -> None:
        self.folder, self.p = folder, n_partitions
        self.work = folder / ".partial"
        self.writers: dict[tuple[str, int], object] = {}
        self.schemas: dict[str, object] = {}
        self.participants = [0] * n_partitions
        self.rows: dict[str, list[int]] = {name: [0] * n_partitions for name in TABLES}
        self.latest: pd.Timestamp | None = None

    def append(self, tables: Mapping[str, pd.DataFrame]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids = tables["participants"]["participant_id"]
        home = pd.Series(partition_of(ids, self.p), index=pd.Index(ids.astype("str")))
        for name in TABLES:
            if name not in tables:
                continue
            frame = tables[name]
            where = home.reindex(frame["participant_id"].astype("str")).to_numpy()
            if name != "participants" and np.isnan(where.astype("float64")).any():
                # a row of a participant not in participants: keep it with its id's hash, so
                # that the partition's validation names it (foreign key)
                lost = np.isnan(where.astype("float64"))
                where[lost] = partition_of(frame["participant_id"][lost], self.p)
            where = where.astype("int64")
            for field in table_spec(name).fields:  # the latest date: the default cut-off
                column = field.name
                if field.type != "date" or column not in frame:
                    continue
                top = pd.to_datetime(frame[column], errors="coerce").max()
                if pd.notna(top) and (self.latest is None or top > self.latest):
                    self.latest = top
            order = np.argsort(where, kind="stable")
            bounds = np.searchsorted(where[order], np.arange(self.p + 1))
            if name not in self.schemas:
                self.schemas[name] = pa.Schema.from_pandas(frame, preserve_index=False)
            for i in range(self.p):  # partitions, not participants
                rows = order[bounds[i] : bounds[i + 1]]
                if not len(rows):
                    continue
                table = pa.Table.from_pandas(
                    frame.iloc[rows], schema=self.schemas[name], preserve_index=False
                )
                key = (name, i)
                if key not in self.writers:
                    path = self.work / part_name(i) / f"{name}.parquet"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self.writers[key] = pq.ParquetWriter(path, self.schemas[name])
                self.writers[key].write_table(table)  # type: ignore[attr-defined]
                self.rows[name][i] += len(rows)
                if name == "participants":
                    self.participants[i] += len(rows)

    def finish(self) -> Path:
        """Close the files and move the partitions and the manifest (last) into place."""
        for writer in self.writers.values():
            writer.close()  # type: ignore[attr-defined]
        for i in range(self.p):
            if not self.participants[i]:
                continue
            (self.work / part_name(i)).rename(self.folder / part_name(i))
        shutil.rmtree(self.work, ignore_errors=True)
        manifest = {
            "format": FORMAT,
            "version": 1,
            "partitions": self.p,
            "hash": HASH,
            "participants": self.participants,
            "rows": {k: v for k, v in self.rows.items() if any(v)},
            "latest_date": None if self.latest is None else self.latest.date().isoformat(),
        }
        from rehabstats import files

        text = json.dumps(manifest, indent=1) + "\n"
        files.write_files([(self.folder / MANIFEST, lambda p: p.write_text(text))])
        return self.folder

    def abandon(self) -> None:
        for writer in self.writers.values():
            with contextlib.suppress(Exception):  # already failing: clean up what we can
                writer.close()  # type: ignore[attr-defined]
        shutil.rmtree(self.work, ignore_errors=True)


def _new_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder: nothing was written")
    if folder.is_dir() and any(folder.iterdir()):
        raise OutputError(
            f"{folder} is not empty: a partitioned cohort is written only into a new or empty "
            "folder, so that no file rehabstats did not write is ever replaced"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None


def write_partitioned(
    chunks: Mapping[str, pd.DataFrame] | Iterable[Mapping[str, pd.DataFrame]],
    out: str | os.PathLike,
    *,
    n_partitions: int,
) -> Path:
    """Write a cohort's tables as a partitioned cohort (one chunk of participants at a time).

    Parameters
    ----------
    chunks : mapping of table name to DataFrame, or an iterable of them
        The tables (e.g. :attr:`rehabstats.Cohort.tables`), or successive chunks of them, each
        holding whole participants (their ``participants`` rows and all their other rows).
    out : path
        A new or empty folder.
    n_partitions : int
        P >= 1.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    OutputError
        ``out`` is a file or not empty; nothing was written.
    """
    if n_partitions < 1:
        raise ValueError(f"n_partitions must be at least 1, got {n_partitions}")
    folder = Path(out)
    _new_folder(folder)
    writer = _Writer(folder, n_partitions)
    try:
        for chunk in [chunks] if isinstance(chunks, Mapping) else chunks:
            writer.append(chunk)
        return writer.finish()
    except BaseException:
        writer.abandon()
        raise


def _renumbered(tables: dict[str, pd.DataFrame], offset: int, width: int) -> dict:
    """Simulated tables with ids ``P<offset + k>`` (zero-padded to ``width`` digits)."""
    old = tables["participants"]["participant_id"].astype("str")
    number = old.str[1:].astype("int64") + offset
    new = "P" + number.astype("str").str.zfill(width)
    mapping = pd.Series(new.to_numpy(), index=old.to_numpy())
    out = {}
    for name, frame in tables.items():
        frame = frame.copy()
        frame["participant_id"] = mapping.reindex(frame["participant_id"].astype("str")).to_numpy()
        out[name] = frame
    return out


def simulate_partitioned(
    n_participants: int,
    out: str | os.PathLike,
    *,
    n_partitions: int,
    seed: int = 0,
    chunk: int = SIMULATION_CHUNK,
) -> Path:
    """Simulate a cohort straight into partitions, ``chunk`` participants at a time.

    Up to ``chunk`` participants the cohort is :func:`rehabstats.simulate_tables`
    (``n_participants``, ``seed``) itself, partitioned. Beyond, chunk k (0, 1, ...) is
    ``simulate_tables(size, seed=seed + k)`` with its ids renumbered to follow the previous
    chunks' (``P0000001`` ...): the whole cohort is never in memory.
    """
    from rehabstats.data.simulate import simulate_tables

    width = max(6, len(str(n_participants)))

    def chunks() -> Iterable[dict[str, pd.DataFrame]]:
        done, k = 0, 0
        while done < n_participants:
            size = min(chunk, n_participants - done)
            tables = simulate_tables(size, seed=seed + k)
            yield tables if n_participants <= chunk else _renumbered(tables, done, width)
            done, k = done + size, k + 1

    return write_partitioned(chunks(), out, n_partitions=n_partitions)
