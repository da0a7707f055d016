"""The output folder: writing inside it only, removing what rehabstats wrote there, and finishing
what a killed run left.

Every file a batch writes (reports, notebooks, manifests, the index) goes through
:mod:`rehabstats.files` (temporary file beside the target, ``fsync``, ``os.replace``), checked to
stay inside the output folder on the open folder right before it is replaced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rehabstats import files

__all__ = ["INDEX_NAME", "inside", "install", "remove", "sweep"]

INDEX_NAME = "index.html"
"""The index page of the output folder (:func:`rehabstats.batch.index.write_index`)."""


def install(content: bytes, target: Path, mode: int, root: Path | None = None) -> None:
    """Write ``target`` atomically (:func:`rehabstats.files.atomic_write`), creating its folder;
    with ``root``, only if the folder really is inside ``root`` (checked again right before the
    file is replaced: a symbolic link created meanwhile cannot lead the write out).

    Raises
    ------
    OutputError
        The folder cannot be created, or leads outside ``root``.
    """
    files.make_folder(target.parent, within=root)
    files.atomic_write(target, content, mode=mode, within=root)


def inside(folder: Path, root: Path) -> bool:
    """Whether ``folder``, symbolic links followed, is ``root`` or inside it."""
    return Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(root))


def remove(path: Path, root: Path) -> None:
    """Delete a file rehabstats wrote in the output folder (never through a link leading out)."""
    if inside(path.parent, root):
        path.unlink(missing_ok=True)


def sweep(paths: Sequence[Path], root: Path) -> None:
    """Finish or remove what a killed earlier run left beside ``paths`` (the files of one report,
    in one folder): :func:`rehabstats.files.sweep`, in a folder inside ``root`` only."""
    folder = paths[0].parent
    if not folder.is_dir() or not inside(folder, root):
        return
    files.sweep(folder, [p.name for p in paths])
