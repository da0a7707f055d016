"""Printing the reports: the print layout in real headless Chromium (sections from a new page,
nothing cut, the provenance open, wide tables wrapped), and ``rehabstats report --format pdf``.

Uses the demo reports rendered once per session (``rendered_demo``), the cohort-folder report
of ``test_render.py`` (``folder_report``, run with ``--format pdf``) and the browser of
``test_html_browser.py``. A print-media screenshot of each report is kept in
``tests/artifacts/`` (``<report>.print.png``) to look at. Skipped only without Chromium.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from cli_support import run_in_process
from test_html_browser import CHROMIUM, browser, open_page  # noqa: F401 - the fixture
from test_render import ARTIFACTS, folder_report, rendered_demo

from rehabstats.errors import OutputError
from rehabstats.report.pdf import PdfError, print_pdf, written_by_rehabstats_pdf

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    ),
]

A4_WIDTH_PX = round((210 - 2 * 12) / 25.4 * 96)  # the printable width: A4 less its margins
A4_HEIGHT_PX = round((297 - 2 * 14) / 25.4 * 96)


def pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF: its page objects (``/Type /Page``, not ``/Pages``)."""
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


@pytest.mark.parametrize("report", ["cohort_report", "clinic_audit"])
def test_the_print_layout_breaks_before_sections_and_cuts_nothing(browser, report):  # noqa: F811
    page = open_page(browser)
    try:
        page.send("Page.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=A4_WIDTH_PX, height=A4_HEIGHT_PX,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        page.send("Emulation.setEmulatedMedia", media="print")
        page.send("Page.navigate", url=rendered_demo()[report].resolve().as_uri())
        page.wait_for("Page.loadEventFired")
        state = json.loads(page.send("Runtime.evaluate", returnByValue=True, expression="""
            JSON.stringify({
              h2: [...document.querySelectorAll('h2')].map(e => getComputedStyle(e).breakBefore),
              figures: [...document.querySelectorAll('figure.rs-figure')].map(
                  e => getComputedStyle(e).breakInside),
              rows: getComputedStyle(document.querySelector('table.rs-table tr')).breakInside,
              images: [...document.images].map(i => [i.getBoundingClientRect().width,
                                                     i.getBoundingClientRect().height]),
              wide: [...document.querySelectorAll('table.rs-table')].filter(
                  t => t.getBoundingClientRect().right > window.innerWidth + 1).length,
              provenance: document.querySelector('details.rs-provenance table')
                  .getBoundingClientRect().height,
              width: document.documentElement.scrollWidth,
            })""")["result"]["value"])  # fmt: skip
        assert state["h2"] and set(state["h2"]) == {"page"}
        assert set(state["figures"]) == {"avoid"} and state["rows"] == "avoid"
        # every figure fits one page (so none is cut), and no table runs off the page's side
        assert all(w <= A4_WIDTH_PX + 1 and h <= A4_HEIGHT_PX for w, h in state["images"])
        assert state["wide"] == 0 and state["width"] <= A4_WIDTH_PX + 1
        assert state["provenance"] > 0  # the collapsed provenance block is printed open

        page.send("Emulation.setDeviceMetricsOverride", width=A4_WIDTH_PX, height=20000,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{report}.print.png").write_bytes(base64.b64decode(shot["data"]))

        printed = base64.b64decode(page.send("Page.printToPDF", preferCSSPageSize=True)["data"])
        # a page for the header, then each section from a new page
        assert pdf_pages(printed) >= 1 + len(state["h2"])
    finally:
        page.close()


def test_print_pdf_writes_a_pdf_and_replaces_only_its_own(tmp_path):
    html_path = rendered_demo()["clinic_audit"]
    out = tmp_path / "audit.pdf"
    assert print_pdf(html_path, out, render_id="abc-123") == out.resolve()
    content = out.read_bytes()
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
    assert pdf_pages(content) >= 6  # the header page and the five sections
    assert written_by_rehabstats_pdf(out) and b"render-id abc-123" in content
    assert print_pdf(html_path, out, render_id="def") == out.resolve()  # its own: replaced
    assert b"render-id def" in out.read_bytes()

    theirs = tmp_path / "theirs.pdf"
    theirs.write_bytes(b"%PDF-1.4 someone else's file\n%%EOF\n")
    with pytest.raises(OutputError, match="not written by rehabstats"):
        print_pdf(html_path, theirs)
    assert theirs.read_bytes() == b"%PDF-1.4 someone else's file\n%%EOF\n"


def test_without_chromium_the_message_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("REHABSTATS_CHROMIUM", str(tmp_path / "no-such-browser"))
    with pytest.raises(PdfError, match="apt install chromium"):
        print_pdf(rendered_demo()["clinic_audit"], tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()
    # the command says so before any kernel starts, and writes nothing
    result = run_in_process(
        "report", str(tmp_path), "-n", "clinic_audit", "--out", str(tmp_path / "r.pdf"),
        env={"REHABSTATS_CHROMIUM": str(tmp_path / "no-such-browser")},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot make a PDF" in result.stderr and "apt install chromium" in result.stderr
    assert not list(tmp_path.glob("r.*"))


def test_report_format_pdf_writes_the_html_notebook_and_pdf():
    # the cohort-folder report of test_render.py, run once with --format pdf (Chromium is here)
    result, _, out = folder_report()
    assert result.returncode == 0, result.stderr
    pdf = out.with_suffix(".pdf")
    assert f"wrote {pdf}" in result.stdout
    assert out.is_file() and out.with_suffix(".ipynb").is_file()
    content = pdf.read_bytes()
    assert content.startswith(b"%PDF-") and pdf_pages(content) >= 6
    # the PDF names the render the HTML and notebook come from
    render_id = re.search(r'content="([^"]+)" name="rehabstats-render-id"', out.read_text())[1]
    assert f"render-id {render_id}".encode() in content
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
