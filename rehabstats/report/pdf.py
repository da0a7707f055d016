"""A rendered report printed to PDF by headless Chromium (``rehabstats report --format pdf``).

The PDF is the report's HTML printed with its print stylesheet (A4, each section from a new
page, no figure or table row cut; ``report.css``): what a clinic gets from the browser's
*Print > Save as PDF*, made without a person. Chromium (or Chrome) is looked up where it is
usually installed; ``REHABSTATS_CHROMIUM`` names another executable. Without one, a clear
error says how to install it (or to print the HTML from any browser).

The PDF is written as rehabstats writes every file (temporary file, ``fsync``, atomic rename;
:mod:`rehabstats.files`), and carries a comment line naming rehabstats and the render it was
printed from, so that a later run replaces it but never a PDF that rehabstats did not write.
Chromium runs with a throw-away profile in a private work folder, offline (the report makes no
network request), and is stopped after ``timeout`` seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from rehabstats import files
from rehabstats.errors import OutputError, RehabstatsError

__all__ = [
    "CHROMIUM_ENV",
    "PdfError",
    "check_chromium",
    "find_chromium",
    "print_pdf",
    "written_by_rehabstats_pdf",
]

CHROMIUM_ENV = "REHABSTATS_CHROMIUM"
"""Environment variable naming the Chromium or Chrome executable to print with."""

_WORK_PREFIX = "rehabstats-pdf-"
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_MARKER = b"%rehabstats-pdf render-id "
_INSTALL_HELP = (
    "install Chromium (Debian/Ubuntu: sudo apt install chromium; macOS: install Google Chrome) "
    f"or set {CHROMIUM_ENV} to its executable; the HTML report prints to PDF from any browser "
    "too (File > Print > Save as PDF)"
)


class PdfError(RehabstatsError, RuntimeError):
    """The PDF could not be made (no Chromium, or Chromium failed)."""


def find_chromium() -> str | None:
    """The Chromium/Chrome executable: ``$REHABSTATS_CHROMIUM``, else the first on ``PATH``.

    Returns None when there is none (``REHABSTATS_CHROMIUM`` naming a missing file counts as
    none: :func:`print_pdf` says which).
    """
    named = os.environ.get(CHROMIUM_ENV, "").strip()
    if named:
        return named if shutil.which(named) else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def check_chromium() -> str:
    """The executable :func:`find_chromium` finds, else :class:`PdfError` saying how to get one."""
    found = find_chromium()
    if found is None:
        named = os.environ.get(CHROMIUM_ENV, "").strip()
        why = (f"{CHROMIUM_ENV}={named!r} is not an executable" if named
               else "no Chromium or Chrome was found on PATH")  # fmt: skip
        raise PdfError(f"cannot make a PDF: {why}; {_INSTALL_HELP}")
    return found


def written_by_rehabstats_pdf(path: str | os.PathLike) -> bool:
    """Whether a PDF file was printed by rehabstats (its closing comment line names it)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            return _MARKER in fh.read()
    except OSError:
        return False


def _marked(pdf: bytes, render_id: str) -> bytes:
    """``pdf`` with a comment line before its final ``startxref`` (offsets unchanged: the
    cross-reference table it points to comes before)."""
    at = pdf.rfind(b"startxref")
    if not pdf.startswith(b"%PDF-") or at < 0:
        raise PdfError("Chromium did not write a PDF file")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "", render_id) or "unknown"
    return pdf[:at] + _MARKER + safe.encode() + b"\n" + pdf[at:]


def print_pdf(
    html: str | os.PathLike,
    out: str | os.PathLike,
    *,
    render_id: str | None = None,
    chromium: str | None = None,
    timeout: float = 180.0,
) -> Path:
    """Print a report's HTML file to ``out`` (PDF) with headless Chromium.

    Parameters
    ----------
    html : path
        The rendered report (self-contained HTML).
    out : path
        The PDF to write; an existing file is replaced only if rehabstats printed it.
    render_id : str, optional
        The render the HTML comes from (recorded in the PDF's closing comment).
    chromium : str, optional
        The executable (default :func:`check_chromium`).
    timeout : float
        Seconds Chromium may take.

    Returns
    -------
    Path
        ``out``, resolved.

    Raises
    ------
    PdfError
        No Chromium, or it failed or timed out (its last lines of output are quoted).
    OutputError
        ``out`` exists and was not written by rehabstats.
    """
    source = Path(html).resolve()
    target = Path(out).resolve()
    if (target.exists() or target.is_symlink()) and (
        target.is_dir() or not written_by_rehabstats_pdf(target)
    ):
        raise OutputError(
            f"{target} exists and was not written by rehabstats: it is not replaced. "
            "Choose another output name, or move that file away first."
        )
    executable = chromium or check_chromium()
    files.sweep_workdirs(_WORK_PREFIX)  # what a killed earlier run left
    work = files.make_workdir(_WORK_PREFIX)
    try:
        printed = work / "report.pdf"
        command = [
            executable,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--no-pdf-header-footer",
            f"--user-data-dir={work / 'profile'}",
            f"--print-to-pdf={printed}",
            source.as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with one
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise PdfError(
                f"Chromium did not finish printing {source.name} in {timeout:g} s"
            ) from None
        except OSError as exc:
            raise PdfError(f"cannot run {executable}: {exc.strerror or exc}") from None
        if done.returncode != 0 or not printed.is_file():
            tail = "\n".join((done.stderr or "").strip().splitlines()[-5:])
            raise PdfError(
                f"Chromium could not print {source.name} (exit {done.returncode})"
                + (f":\n{tail}" if tail else "")
            )
        content = _marked(printed.read_bytes(), render_id or "")
    finally:
        files.remove_workdir(work)
    files.make_folder(target.parent)
    return files.atomic_write(target, content)
