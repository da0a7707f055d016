"""Data and parameters that carry HTML, JavaScript, template or mathtext payloads.

A 60-participant simulated cohort whose every free-text column (participant_id, site, arm,
withdrawal_reason, events.note) holds payloads, with a payload title, is rendered once through
both reports -- the clinic audit for the team (identifiers, sites and arms in its tables and
figures) and the cohort report for readers outside the team (pseudonyms, small cells) -- and the
batch index lists them. Each page is checked twice:

- in the HTML: no tag, attribute or link of a payload survives (no script, no meta refresh, no
  injected style, no live link, no event handler), and every payload is there as escaped text;
- in headless Chromium: the page stays the report (no navigation), requests nothing, and shows
  the payloads as text.

Figures are drawn with the payloads as labels (matplotlib would parse ``$...$`` as mathtext and
fail on an unknown symbol): a render that finishes proves they are drawn literally.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from test_html_browser import CHROMIUM, browser, open_page  # noqa: F401 (browser: a fixture)

from rehabstats import write_cohort
from rehabstats.batch import write_index
from rehabstats.batch.manifest import MANIFEST_VERSION
from rehabstats.data.simulate import simulate_tables
from rehabstats.report.disclosure import PSEUDONYM_KEY_ENV
from rehabstats.report.render import render_report

pytestmark = pytest.mark.slow

KEY = "injection-test-key-0123456789"  # a test secret

PAYLOADS = {
    "script": "<script>alert(1)</script>",
    "refresh": '<meta http-equiv="refresh" content="0;url=http://example.com">',
    "style": "<style>td{display:none}</style>",
    "link": '<a href="http://example.com">x</a>',
    "img": "<img src=x onerror=alert(1)>",
    "svg": '"><svg onload=alert(1)>',
    "jinja": "{{ jinja }}",
    "math": "$\\frac{1}{0}$",
    "amp": "&amp;",
}
MATH_CRASH = "a$b$c $\\x$"  # mathtext would fail on the unknown symbol \x
TITLE = "</title><script>alert(1)</script>{{ title }} $\\x$ &amp; " + PAYLOADS["refresh"]

SITES = {  # the simulator's five sites, each renamed to a payload
    "site_a": PAYLOADS["refresh"],
    "site_b": PAYLOADS["script"] + " " + MATH_CRASH,
    "site_c": PAYLOADS["style"],
    "site_d": PAYLOADS["link"] + " " + PAYLOADS["amp"],
    "site_e": PAYLOADS["svg"] + " " + PAYLOADS["jinja"],
}
ARMS = {
    "alfredson": PAYLOADS["img"],
    "hsr": PAYLOADS["svg"] + " " + PAYLOADS["math"],
    "staged": PAYLOADS["style"] + " " + PAYLOADS["link"],
}
REASONS = {  # each reason at least 5 times, so an external report shows it too
    "lost to follow-up": PAYLOADS["refresh"] + " " + PAYLOADS["jinja"],
    "unrelated illness or injury": PAYLOADS["img"] + " " + PAYLOADS["amp"],
}
OTHER_REASON = PAYLOADS["link"] + " " + MATH_CRASH


def payload_tables() -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The simulated cohort with a payload in every text value that may carry one."""
    tables = simulate_tables(60, seed=5)
    people = tables["participants"]
    old_ids = people["participant_id"].astype("str")
    names = list(PAYLOADS.values())
    ids = {old: f"{names[i % len(names)]} {old}" for i, old in enumerate(old_ids)}
    for name, table in tables.items():
        table["participant_id"] = table["participant_id"].astype("str").map(ids)
        tables[name] = table
    reason = people["withdrawal_reason"]
    people["site"] = people["site"].map(SITES)
    people["arm"] = people["arm"].map(ARMS)
    people["withdrawal_reason"] = reason.map(REASONS).fillna(OTHER_REASON).where(reason.notna())
    events = tables["events"]
    events["note"] = [names[i % len(names)] for i in range(len(events))]
    assert not people[["site", "arm"]].isna().any().any()  # every value renamed
    return tables, sorted(ids.values())


class Page(HTMLParser):
    """Every tag with its attributes, the text of each element kind, and all text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.inside: list[str] = []
        self.by_tag: dict[str, list[str]] = {}
        self.feed(text)
        self.close()
        self.all_text = "".join(self.text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "img", "br", "link", "input", "hr", "col", "wbr"):
            self.inside.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.inside:
            while self.inside and self.inside.pop() != tag:
                pass

    def handle_data(self, data):
        self.text.append(data)
        if self.inside:
            self.by_tag.setdefault(self.inside[-1], []).append(data)


def assert_nothing_injected(html: str) -> Page:
    """No tag, attribute or link from a payload: only what a report itself writes."""
    page = Page(html)
    names = {tag for tag, _ in page.tags}
    assert not names & {"script", "svg", "iframe", "object", "embed", "form", "base", "link"}
    for tag, attrs in page.tags:
        handlers = [a for a in attrs if a.startswith("on")]
        assert handlers == [], (tag, attrs)
        if tag == "meta":
            assert attrs.get("http-equiv") in (None, "Content-Security-Policy"), attrs
        if tag == "a":
            assert (attrs.get("href") or "#").startswith(("#", "./")), attrs
            assert "://" not in (attrs.get("href") or ""), attrs
        if tag == "img":
            assert (attrs.get("src") or "").startswith("data:image/png;base64,"), attrs
    styles = "".join(page.by_tag.get("style", []))
    assert "td{display:none}" not in styles  # no injected rule hides cells
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert len(csp) == 1 and "default-src 'none'" in csp[0]["content"]
    return page


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, report_kernel):
    """Both reports on the payload cohort (in the kept report kernel) and the index."""
    root = tmp_path_factory.mktemp("injection")
    tables, ids = payload_tables()
    folder = write_cohort(tables, root / "cohort")
    interim = tables["participants"]["enrolled_on"].max() - pd.Timedelta(days=30)
    out = root / "reports"
    mp = pytest.MonkeyPatch()
    mp.setenv(PSEUDONYM_KEY_ENV, KEY)
    try:
        results = {
            "internal": render_report(
                "clinic_audit", folder, out=out / "audit" / "internal.html",
                parameters={"title": TITLE, "data_cutoff": interim.date().isoformat()},
                kernel=report_kernel,
            ),
            "external": render_report(
                "cohort_report", folder, out=out / "trial" / "external.html",
                parameters={"title": TITLE, "audience": "external", "group": "arm"},
                kernel=report_kernel,
            ),
        }  # fmt: skip
    finally:
        mp.undo()
    write_manifests(out, results)
    index = write_index(out)
    return {"results": results, "index": index, "ids": ids}


def write_manifests(out: Path, results: dict) -> None:
    """Manifests as a batch run writes them: a fan-out value, a title and an error with
    payloads (the index shows the job, the report's title and the error's summary)."""
    for n, (audience, result) in enumerate(results.items()):
        rel = result.html_path.relative_to(out).as_posix()
        last = {
            "run_id": "r1",
            "started_at": "2026-01-31T02:00:00Z",
            "finished_at": "2026-01-31T02:30:05Z",
            "outputs": {"html": rel, "notebook": Path(rel).with_suffix(".ipynb").as_posix()},
            "report_provenance": dict(result.provenance),
        }
        doc = {
            "manifest_version": MANIFEST_VERSION,
            "job": f"job-{audience}:{SITES['site_a' if n else 'site_b']}",
            "job_name": f"job-{audience}",
            "status": "failed" if n else "ok",
            "reason": PAYLOADS["style"] + " inputs changed",
            "audience": audience,
            "finished_at": "2026-02-01T02:30:05Z",
            "error": {"summary": PAYLOADS["refresh"] + " " + PAYLOADS["link"]} if n else None,
            "outputs": last["outputs"],
            "report_provenance": dict(result.provenance),
            "last_success": last,
        }
        target = out / f"job-{audience}.manifest.json"
        target.write_text(json.dumps(doc, indent=2))


# ---- the HTML -------------------------------------------------------------------------------


def test_internal_report_shows_every_payload_as_text_and_runs_none(rendered):
    result = rendered["results"]["internal"]
    html = result.html_path.read_text()
    page = assert_nothing_injected(html)
    assert page.by_tag["title"] == [TITLE]  # the title parameter, literally
    assert page.by_tag["h1"] == [TITLE]
    text = page.all_text
    for name, payload in {**PAYLOADS, "math crash": MATH_CRASH}.items():
        assert payload in text, name
    for site in SITES.values():  # column headers of the audit table, review list cells
        assert site in page.by_tag["th"] or site in text, site
    assert any(site in page.by_tag["th"] for site in SITES.values())  # group names as headers
    assert [i for i in rendered["ids"] if i in text]  # the review list names participants
    # escaped in the markup (not just somehow absent): the first payload as entities
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&amp;amp;" in html  # "&amp;" is shown as the five characters
    assert "{{ jinja }}" in text and "{{ title }}" in text  # no template evaluated them
    # the audit table's cells are HTML put together from escaped parts: shown as HTML
    assert html.count('<span class="rs-sub">') >= 10 and "&lt;br&gt;" not in html


def test_external_report_shows_no_id_and_runs_none(rendered):
    result = rendered["results"]["external"]
    html = result.html_path.read_text()
    page = assert_nothing_injected(html)
    assert page.by_tag["title"] == [TITLE]
    text = page.all_text
    for arm in ARMS.values():  # the groups compared: column headers and figure legends
        assert arm in text, arm
    assert [r for r in REASONS.values() if r in text]  # withdrawal reasons (5 or more each)
    notebook = result.notebook_path.read_text()
    assert not [i for i in rendered["ids"] if i in text or i in notebook]
    assert not [i for i in rendered["ids"] if i.split(" ")[-1] in text]


def test_batch_index_shows_payloads_as_text_and_runs_none(rendered):
    html = rendered["index"].read_text()
    page = assert_nothing_injected(html)
    assert page.by_tag["title"] == ["Reports - rehabstats"]
    text = page.all_text
    assert TITLE in text
    assert f"job-internal:{SITES['site_b']}" in text
    assert PAYLOADS["refresh"] + " " + PAYLOADS["link"] in text
    links = [a["href"] for t, a in page.tags if t == "a"]
    assert links and all(link.startswith("./") for link in links)


# ---- in a browser ---------------------------------------------------------------------------


_STATE = """JSON.stringify({
    href: location.href,
    title: document.title,
    h1: [...document.querySelectorAll('h1')].map(e => e.textContent),
    scripts: document.scripts.length,
    refresh: document.querySelectorAll('meta[http-equiv="refresh" i]').length,
    svg: document.querySelectorAll('svg').length,
    live: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
        .filter(h => !h.startsWith('#') && !h.startsWith('./')),
    handlers: [...document.querySelectorAll('*')].filter(
        e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
    hidden: [...document.querySelectorAll('td, th')].filter(
        e => getComputedStyle(e).display === 'none').length,
    cells: document.querySelectorAll('td').length,
    text: document.body.innerText,
})"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
@pytest.mark.parametrize("which", ["internal", "external", "index"])
def test_in_a_browser_nothing_navigates_or_loads(rendered, browser, which):  # noqa: F811
    path = rendered["index"] if which == "index" else rendered["results"][which].html_path
    url = path.resolve().as_uri()
    page = open_page(browser)
    try:
        for domain in ("Network", "Runtime", "Page"):
            page.send(f"{domain}.enable")
        page.send("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        page.drain(1.5)  # a meta refresh of 0 s would navigate within this
        requested = [e["params"]["request"]["url"] for e in page.events
                     if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip
        assert [u for u in requested if u != url and not u.startswith("data:")] == []
        navigated = [e["params"]["frame"]["url"] for e in page.events
                     if e.get("method") == "Page.frameNavigated"]  # fmt: skip
        assert set(navigated) <= {url}
        value = page.send("Runtime.evaluate", expression=_STATE, returnByValue=True)
        state = json.loads(value["result"]["value"])
    finally:
        page.close()
    assert state["href"] == url  # still the report: nothing navigated
    assert state["scripts"] == 0 and state["refresh"] == 0 and state["svg"] == 0
    assert state["live"] == [] and state["handlers"] == 0
    assert state["cells"] > 0 and state["hidden"] == 0  # no injected style hides a cell
    shown = re.sub(r"\s+", " ", state["text"])
    if which == "index":
        assert state["title"] == "Reports - rehabstats"
        assert re.sub(r"\s+", " ", TITLE) in shown
        return
    assert state["title"] == TITLE and state["h1"] == [TITLE]
    for name, payload in PAYLOADS.items():  # seen by the reader as the characters they are
        assert payload in shown, name
