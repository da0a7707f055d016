"""Read a report block's HTML back: its tables as DataFrames of text, captions and notes.

For tests of the report sections (tests/report/test_sections_*.py): what a reader sees, parsed
from the HTML the section made (pandas.read_html needs lxml, which is not a dependency).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pandas as pd


class _Tables(HTMLParser):
    """The rows of every ``T_<name>`` table, cells spanning rows (``rowspan``) repeated."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._span = 1
        self._spans: dict[int, list] = {}  # column -> [rows left, text]

    def _fill(self) -> None:
        row = self._table[-1]
        while len(row) in self._spans:
            left = self._spans[len(row)]
            row.append(left[1])
            left[0] -= 1
            if left[0] == 0:
                del self._spans[len(row) - 1]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and (attrs.get("id") or "").startswith("T_"):
            self._table = self.tables.setdefault(attrs["id"][2:], [])
            self._spans = {}
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("th", "td") and self._table is not None:
            self._fill()
            self._cell = []
            self._span = int(attrs.get("rowspan") or 1)
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None and self._table is not None:
            text = "".join(self._cell).strip()
            if self._span > 1:
                self._spans[len(self._table[-1])] = [self._span - 1, text]
            self._table[-1].append(text)
            self._cell = None
        elif tag == "tr" and self._table is not None:
            self._fill()
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(block) -> dict[str, pd.DataFrame]:
    """Every table of a block by name (``html.table(name=...)``): the first row is the header;
    the columns without a heading (the index levels) are the row labels."""
    parser = _Tables()
    parser.feed(block._repr_html_())
    out = {}
    for name, rows in parser.tables.items():
        rows = [r for r in rows if r]
        header, body = rows[0], rows[1:]
        width = max(len(r) for r in body) if body else len(header)
        header = [""] * (width - len(header)) + header  # the index column has no heading
        levels = next((i for i, h in enumerate(header) if h), width)  # leading blank headings
        header = [f"level_{i}" if i < levels else h for i, h in enumerate(header)]
        frame = pd.DataFrame([r + [""] * (width - len(r)) for r in body], columns=header)
        if levels:
            frame = frame.set_index(header[:levels])
            frame.index.names = [None] * levels
        out[name] = frame
    return out


def captions(block) -> list[str]:
    """The text of every caption paragraph and figure caption of a block."""
    text = block._repr_html_()
    found = re.findall(r'<p class="rs-caption">(.*?)</p>|<figcaption>(.*?)</figcaption>', text)
    return [html.unescape(a or b) for a, b in found]


def notes(block) -> dict[str, list[str]]:
    """Title -> items of each notes box of a block."""
    text = block._repr_html_()
    boxes = re.findall(r'<div class="rs-notes"><strong>(.*?)</strong><ul>(.*?)</ul>', text)
    return {html.unescape(t): [html.unescape(i) for i in re.findall(r"<li>(.*?)</li>", items)]
            for t, items in boxes}  # fmt: skip


def figures(block) -> int:
    """How many figures (inline PNGs) a block holds."""
    return block._repr_html_().count('<img src="data:image/png;base64,')
