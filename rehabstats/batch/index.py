"""The index page: every report of the output folder, its audience, status and date, on one page.

:func:`write_index` reads every manifest under the output folder (:mod:`rehabstats.batch.manifest`)
and writes ``index.html``: self-contained (inline CSS, no script), with a Content-Security-Policy
forbidding any request, every text from a manifest HTML-escaped and every link a file inside the
folder.
"""

from __future__ import annotations

import html
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rehabstats import files
from rehabstats.batch.jobfile import JobFile
from rehabstats.batch.manifest import MANIFEST_VERSION, read_manifest, utc_now
from rehabstats.batch.outputs import INDEX_NAME, install

__all__ = ["write_index"]

_INDEX_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1b1b1b}
h1{font-size:1.4rem;margin:0 0 .3rem}p.meta{color:#555;margin:.2rem 0 1rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right}
.s-ok{color:#16620f;font-weight:600}.s-failed{color:#a4161a;font-weight:600}
.s-skipped{color:#3a3a3a;font-weight:600}.aud-external{background:#fff1c2;padding:0 .3rem;
border-radius:3px}.note{color:#444;font-size:.9em}tr.retired td{color:#777}
"""


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _href(relative: str) -> str:
    """A link to a file under the index's folder: ``./`` and each path segment percent-encoded,
    so that no name is read as a scheme (``javascript:``, ``http:``), a query or a fragment."""
    return "./" + "/".join(urllib.parse.quote(part, safe="") for part in relative.split("/"))


def _when(value: Any) -> str:
    """``2026-01-31T02:30:05Z`` as ``2026-01-31 02:30`` (the index says times are UTC)."""
    text = str(value or "")
    match = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?Z", text)
    return f"{match.group(1)} {match.group(2)}" if match else (text or "-")


def write_index(
    output_dir: str | os.PathLike,
    *,
    job_file: JobFile | None = None,
    planned: Mapping[str, set[str]] | None = None,
    mode: int | None = None,
) -> Path:
    """Write ``<output_dir>/index.html`` listing every report found there, atomically.

    Every ``*.manifest.json`` under the folder is listed (hidden folders excepted): the report
    (linked when one exists), its audience, the last run's status and note, the date of the
    report on disk (its last successful run) and its data cut-off. Reports no longer produced by
    the job file (a job removed, a site gone from the data) are listed last as retired.
    Self-contained: inline CSS, no script, a Content-Security-Policy forbidding any request.

    Parameters
    ----------
    output_dir : path
    job_file : JobFile, optional
        The job file of the run; manifests of other job files or of removed jobs are retired.
    planned : mapping of str to set of str, optional
        Job name -> the report names it produced in this run (fanned-out reports not among
        them are retired).
    mode : int, optional
        File mode (default: 0666 minus the umask).
    """
    root = Path(output_dir).resolve()
    manifests = []
    for path in sorted(root.rglob("*.manifest.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts[:-1]):
            continue
        doc = read_manifest(path)
        if doc is not None and doc.get("manifest_version") == MANIFEST_VERSION:
            manifests.append(doc)
    names = {j.name for j in job_file.jobs} if job_file else None
    planned = dict(planned or {})

    def current(doc: Mapping[str, Any]) -> bool:
        if names is None:
            return True
        job = doc.get("job_name")
        if job not in names or doc.get("job_file") != str(job_file.path):
            return False
        return job not in planned or doc.get("job") in planned[job]

    manifests.sort(key=lambda d: (not current(d), str(d.get("job"))))
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    rows = []
    for doc in manifests:
        is_current = current(doc)
        status = str(doc.get("status", "?"))
        if is_current:
            counts[status] = counts.get(status, 0) + 1
        last = doc.get("last_success") or {}
        provenance = last.get("report_provenance") or {}
        html_rel = (last.get("outputs") or {}).get("html")
        exists = bool(html_rel) and (root / html_rel).is_file()
        job = _h(doc.get("job"))
        link = f'<a href="{_href(html_rel)}">{job}</a>' if exists else f"{job} (no report)"
        note = str(doc.get("reason", ""))
        if doc.get("error"):
            note = str(doc["error"].get("summary", ""))
            if exists:
                note += f" - the previous report (from {last.get('finished_at', '?')}) is kept"
        note_html = _h(note)
        failed_nb = (doc.get("outputs") or {}).get("failed_notebook")
        if status == "failed" and failed_nb and (root / failed_nb).is_file():
            note_html += f' (<a href="{_href(failed_nb)}">failed notebook</a>)'
        if not is_current:
            note_html += " <em>(no longer produced by the job file)</em>"
        audience = str(doc.get("audience", "?"))
        rows.append(
            f'<tr class="{"current" if is_current else "retired"}">'
            f'<td>{link}<br><span class="note">{_h(provenance.get("title") or doc.get("report"))}'
            "</span></td>"
            f'<td><span class="aud-{_h(audience)}">{_h(audience)}</span></td>'
            f'<td class="s-{_h(status)}">{_h(status)}</td>'
            f"<td>{_h(_when(last.get('finished_at')))}</td>"
            f"<td>{_h(provenance.get('data_cutoff') or '-')}</td>"
            f"<td>{_h(_when(doc.get('finished_at')))}</td>"
            f'<td class="note">{note_html}</td></tr>'
        )
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no reports yet"
    source = f" from {_h(job_file.path)}" if job_file else ""
    body = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reports - rehabstats</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<h1>Reports</h1>
<p class="meta">Updated {_h(utc_now())} (UTC) by <code>rehabstats batch</code>{source}: {_h(summary)}.
"Last run" is the status of the latest run; the report linked is the last one that succeeded,
from the date under "Report from". Times are UTC.</p>
<table>
<thead><tr><th>Report</th><th>Audience</th><th>Last run</th><th>Report from</th>
<th>Data cut-off</th><th>Last run at</th><th>Note</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""
    target = root / INDEX_NAME
    install(body.encode("utf-8"), target, files.file_mode() if mode is None else mode, root)
    return target
