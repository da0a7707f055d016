"""Report blocks and the HTML builders: the one place report HTML is put together.

A section returns a :class:`Block`: HTML parts in order (tables, figures, captions, notes),
shown as HTML in JupyterLab and in the rendered report, with the numeric frames behind its
tables (``frames``, for tests) and, for the header, the machine-readable provenance.

Every text from the data (sites, arms, reasons, ids), the parameters (title) or the code is
HTML-escaped where it lands: by :func:`table` (cells, index and column labels, caption),
:func:`caption`, :func:`figure` (alt text and caption) and :func:`notes`, or with :func:`esc`
where a section puts HTML together (docs/privacy.md).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

from rehabstats.report import plots
from rehabstats.report.specs import PROVENANCE_MIMETYPE

__all__ = [
    "Block",
    "caption",
    "esc",
    "figure",
    "notes",
    "subplots",
    "table",
]

_PNG_DPI = 120
_CSS_DPI = 96  # a figure inch is shown as 96 CSS pixels, so PNGs stay sharp on dense screens

_MARKER_LT = re.compile(r"<(?=\d)")


class Block:
    """A displayable report block: HTML parts (figures, tables, text) in order.

    Parameters
    ----------
    *parts : str
        HTML fragments (built by the helpers of this module, user text escaped).
    name : str
        The section's name (``data-rs-section`` of the block's ``div``).
    provenance : dict, optional
        Machine-readable provenance, emitted as an extra (non-displayed) mimetype.
    frames : dict, optional
        The numeric DataFrames behind the block's tables (as shown to the report's audience).
    """

    def __init__(
        self,
        *parts: str,
        name: str = "",
        provenance: dict[str, Any] | None = None,
        frames: dict[str, pd.DataFrame] | None = None,
    ):
        self.parts = [p for p in parts if p]
        self.name = name
        self.provenance = provenance
        self.frames = frames or {}

    def _repr_html_(self) -> str:
        body = "\n".join(self.parts)
        # a suppression marker "<5" in a cell or text: a tag never starts with a digit
        body = _MARKER_LT.sub("&lt;", body)
        return f'<div class="rs-block" data-rs-section="{html.escape(self.name)}">{body}</div>'

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/html": self._repr_html_(), "text/plain": repr(self)}
        if self.provenance is not None:
            bundle[PROVENANCE_MIMETYPE] = json.loads(json.dumps(self.provenance, default=str))
        return bundle

    def __repr__(self) -> str:
        return f"<rehabstats report block {self.name!r}: {len(self.parts)} parts>"


def esc(value: object) -> str:
    """Text as HTML: ``&``, ``<``, ``>`` and both quotes escaped."""
    return html.escape(str(value))


def caption(text: str) -> str:
    """A caption paragraph (``text`` is escaped)."""
    return f'<p class="rs-caption">{esc(text)}</p>'


def notes(items: Sequence[str], title: str = "Notes") -> str:
    """A notes box (title and items escaped); nothing without items."""
    if not items:
        return ""
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f'<div class="rs-notes"><strong>{esc(title)}</strong><ul>{lis}</ul></div>'


def figure(fig: Figure, *, alt: str, caption: str = "") -> str:
    """A matplotlib figure as an inline PNG (data URI) with alt text and a caption (escaped)."""
    buf = io.BytesIO()
    with mpl.rc_context(plots.STYLE):  # texts made while drawing are literal too
        fig.savefig(
            buf, format="png", dpi=_PNG_DPI, bbox_inches="tight", facecolor="white",
            metadata={"Software": None},
        )  # fmt: skip
    png = buf.getvalue()
    width_px = int.from_bytes(png[16:20], "big")
    shown = round(width_px * _CSS_DPI / _PNG_DPI)
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (
        f'<figure class="rs-figure"><img src="data:image/png;base64,{data}" alt="{esc(alt)}" '
        f'width="{shown}">{cap}</figure>'
    )


def subplots(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw: Any) -> Any:
    """A figure (not registered with pyplot) and its Axes, styled with :data:`plots.STYLE`.

    Returns (figure, axes) with axes as ``Figure.subplots`` returns them.
    """
    with mpl.rc_context(plots.STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, fig.subplots(nrows, ncols, **kw)


def table(
    frame: pd.DataFrame,
    *,
    name: str,
    caption: str | None = None,
    index: bool = True,
    left: Sequence[str] = (),
    wrap: Sequence[str] = (),
    styles: Callable[[Any], Any] | None = None,
    counts: Sequence[Any] = (),
    count_rows: Sequence[Any] = (),
    markup: Sequence[Any] = (),
) -> str:
    """A formatted (string) DataFrame as a styled HTML table.

    Every cell, every index and column label (group names become column headers) and the
    caption are escaped here, the one place report tables are made; only the cells of the
    ``markup`` columns are shown as they are (HTML put together from escaped parts). Cells of
    the ``counts`` columns and of the ``count_rows`` rows (index labels) hold counts of
    participants or events; they get the class ``rs-count`` (what the privacy tests check).
    """
    frame = frame.copy()
    frame.index.names = [None] * frame.index.nlevels
    frame.columns.name = None
    styler = frame.style.set_uuid(name).set_table_attributes('class="rs-table"')
    styler = styler.format(esc)
    markup = [c for c in markup if c in frame.columns]
    if markup:
        styler = styler.format(str, subset=markup)
    styler = styler.format_index(esc, axis=0).format_index(esc, axis=1)
    if caption:
        styler = styler.set_caption(esc(caption))
    if not index:
        styler = styler.hide(axis="index")
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for col in left:
        if col in classes:
            classes[col] = "rs-left"
    for col in wrap:
        if col in classes:
            classes[col] = (classes[col] + " rs-wrap").str.strip()
    is_count = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for col in counts:
        if col in is_count:
            is_count[col] = True
    if len(count_rows):
        is_count.loc[frame.index.isin(list(count_rows))] = True
    classes = classes.mask(is_count, (classes + " rs-count").map(str.strip))
    styler = styler.set_td_classes(classes)
    if styles is not None:
        styler = styles(styler)
    out = styler.to_html()
    # a column header is aligned (and wrapped) as its cells: pandas gives headers no classes
    for j, col in enumerate(frame.columns):
        extra = " ".join(c for c, cols in (("rs-left", left), ("rs-wrap", wrap)) if col in cols)
        if extra:
            out = re.sub(rf'class="(col_heading level\d+ col{j})"', rf'class="\1 {extra}"', out)
    return f'<div class="rs-table-wrap">{out}</div>'
