"""rehabstats.report.html: report blocks, and every text escaped where it lands in HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pandas as pd

from rehabstats.report import html
from rehabstats.report.html import Block


class _Tags(HTMLParser):
    """Every tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


_PAYLOAD = '<script>alert(1)</script><a href="http://example.com">x</a>&amp;'
_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;a href=&quot;http://example.com&quot;&gt;"


def test_tables_escape_cells_labels_and_caption():
    frame = pd.DataFrame({_PAYLOAD: [_PAYLOAD, "3"]}, index=[_PAYLOAD + " row", "plain"])
    frame.index.name = "group"
    out = html.table(frame, name="t", caption="Caption " + _PAYLOAD, counts=[_PAYLOAD])
    tags = _Tags()
    tags.feed(out)
    # only the table's own tags: no script, no link (the payload is in a cell, a column
    # header, an index label and the caption)
    assert {t for t, _ in tags.tags} <= {"div", "style", "table", "caption", "thead", "tbody",
                                         "tr", "th", "td"}  # fmt: skip
    assert out.count(_ESCAPED) == 4
    assert "&amp;amp;" in out  # "&amp;" is shown as text, not as "&"


def test_tables_show_markup_columns_as_they_are():
    cell = f'{html.esc("<b>")}<br><span class="rs-sub">n</span>'
    frame = pd.DataFrame({"a": [cell], "b": ["<br>"]})
    out = html.table(frame, name="t", index=False, markup=["a"])
    assert '&lt;b&gt;<br><span class="rs-sub">n</span>' in out  # column a: as it is
    assert "<td" in out and "&lt;br&gt;</td>" in out  # column b: escaped


def test_captions_notes_and_figures_escape_their_text():
    assert html.caption(_PAYLOAD).count("<") == 2  # the <p> and </p> only
    assert _ESCAPED in html.caption(_PAYLOAD)
    assert _ESCAPED in html.notes([_PAYLOAD], _PAYLOAD)
    fig, ax = html.subplots(2, 1)  # as every report figure is made
    ax.set_title("a$b$c $\\x$")  # mathtext would stop on the unknown symbol \x
    ax.bar(["$\\x$", "a$b"], [1, 2])  # tick labels are made while the figure is drawn
    out = html.figure(fig, alt=_PAYLOAD + '"', caption=_PAYLOAD)
    tags = _Tags()
    tags.feed(out)
    assert [t for t, _ in tags.tags] == ["figure", "img", "figcaption"]
    assert tags.tags[1][1]["alt"] == _PAYLOAD + '"'  # the attribute holds the text, quotes too


def test_a_block_shows_suppression_markers_as_text_and_names_its_section():
    block = Block("<p>n = <5</p>", html.table(pd.DataFrame({"n": ["<5"]}), name="t"),
                  name='a"b')  # fmt: skip
    out = block._repr_html_()
    assert 'data-rs-section="a&quot;b"' in out  # the name is escaped in the attribute
    assert "<5" not in out and out.count("&lt;5") == 2  # "<5" never reads as a tag
    assert block.frames == {} and "text/html" in block._repr_mimebundle_()
