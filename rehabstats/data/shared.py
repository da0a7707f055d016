"""A cohort folder loaded and validated once per batch run, shared with the run's report kernels.

A batch run loads and validates each data folder while planning (:mod:`rehabstats.batch.plan`).
:func:`share_cohort` keeps that validated :class:`~rehabstats.data.cohort.Cohort` (and the data
warnings its loading raised) in the run's private work folder, keyed by the folder's path; the
run names that work folder to its report kernels through the environment (:data:`SHARED_ENV`).
A kernel's :func:`load_shared` then takes the cohort from there instead of reading and
validating the folder again -- but only while the folder's files are exactly as they were when
it was validated (name, size, modification time and inode of every file:
:func:`folder_state`); otherwise, or outside a batch, it loads the folder as
:func:`rehabstats.load_cohort` does. The kernel sees the same cohort and the same data notes
either way, so the reports do not change.

The work folder is private (mode 0700, :func:`rehabstats.files.make_workdir`), written only by
the run and removed when it ends; a file there is read only if this user owns it and nobody
else can write it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rehabstats.data.cohort import Cohort

__all__ = ["SHARED_ENV", "folder_state", "load_shared", "share_cohort"]

SHARED_ENV = "REHABSTATS_SHARED_COHORTS"
"""Environment variable naming the batch run's folder of validated cohorts (for its kernels)."""

_VERSION = 1


def folder_state(folder: Path) -> list[list[Any]]:
    """Name, size, mtime and inode of each file of a data folder (to notice changes)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    out = []
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue
        out.append([entry.name, st.st_size, st.st_mtime_ns, st.st_ino])
    return out


def _entry(root: Path, source: str) -> Path:
    return root / f"cohort-{hashlib.sha256(source.encode('utf-8')).hexdigest()[:32]}.pickle"


def share_cohort(
    root: Path,
    source: str,
    cohort: Cohort,
    caught: list[warnings.WarningMessage],
    state: list[list[Any]],
) -> Path:
    """Keep a validated cohort of folder ``source`` in ``root`` for :func:`load_shared`.

    Parameters
    ----------
    root : Path
        The run's private work folder.
    source : str
        The folder as the kernels will name it (the report's ``data`` parameter).
    cohort : Cohort
        The cohort loaded and validated from ``source``.
    caught : list of warnings.WarningMessage
        The warnings loading it raised (replayed in the kernel: they become data notes).
    state : list
        :func:`folder_state` of ``source`` taken before it was loaded.
    """
    from rehabstats import files

    doc = {
        "version": _VERSION,
        "source": source,
        "state": state,
        "cohort": cohort,
        "warnings": [(w.message, w.category) for w in caught],
    }
    path = _entry(root, source)
    files.atomic_write(path, pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL), mode=0o600)
    return path


def _trusted(path: Path) -> bool:
    """A regular file of this user that nobody else can write, in a folder of the same kind."""
    try:
        for st in (path.parent.stat(), path.stat()):
            if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def load_shared(source: str | os.PathLike) -> Cohort:
    """The cohort of ``source``: the batch run's validated copy while the folder is unchanged,
    else loaded and validated (:func:`rehabstats.load_cohort`).

    The warnings that loading raised are raised again when the copy is used, so a caller that
    records them (the report's data notes) records the same ones.
    """
    from rehabstats.data.folder import load_cohort

    root = os.environ.get(SHARED_ENV)
    if root and isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        path = _entry(Path(root), text)
        if path.is_file() and _trusted(path):
            doc = pickle.loads(path.read_bytes())  # written by this run, private: trusted
            same = doc.get("version") == _VERSION and doc.get("source") == text
            if same and doc["state"] == folder_state(Path(text)):
                for message, category in doc["warnings"]:
                    warnings.warn(message, category, stacklevel=2)
                return doc["cohort"]
    return load_cohort(source)
