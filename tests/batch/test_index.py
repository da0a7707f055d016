"""The index page: links that stay files in the output folder, texts escaped."""

from __future__ import annotations

import json
import re

from rehabstats.batch import write_index
from rehabstats.batch.manifest import MANIFEST_VERSION


def test_index_links_stay_files_in_the_folder(tmp_path):
    # a report's file name is the job file's choice: "javascript:x.html" or "a#b?.html" is a
    # file beside the index, linked as such (a bare name before ":" would be read as a scheme)
    names = ["javascript:alert(1).html", "http:x.html", "a#b?c d.html"]
    for i, name in enumerate(names):
        (tmp_path / name).write_text("<p>report</p>")
        last = {"finished_at": "2026-01-31T02:30:05Z", "outputs": {"html": name},
                "report_provenance": {"title": f"<b>{name}</b>"}}  # fmt: skip
        doc = {"manifest_version": MANIFEST_VERSION, "job": f"job{i}", "status": "ok",
               "audience": "internal", "outputs": {"html": name}, "last_success": last}  # fmt: skip
        (tmp_path / f"job{i}.manifest.json").write_text(json.dumps(doc))
    text = write_index(tmp_path).read_text()
    hrefs = re.findall(r'<a href="([^"]*)"', text)
    assert sorted(hrefs) == ["./a%23b%3Fc%20d.html", "./http%3Ax.html",
                             "./javascript%3Aalert%281%29.html"]  # fmt: skip
    assert "&lt;b&gt;javascript:alert(1).html&lt;/b&gt;" in text  # the title as text
