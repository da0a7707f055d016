"""Reports: parameterised notebooks rendered into self-contained HTML.

What lives here, in the order data flows through it:

- :mod:`~rehabstats.report.specs`: the registry of reports (:data:`REPORTS`), each declared
  once with its notebook, parameters and set-up; parameter validation.
- :mod:`~rehabstats.report.analysis`: :func:`~rehabstats.report.analysis.prepare` and the
  :class:`~rehabstats.report.analysis.Analysis` behind a report: the metric tables it shows,
  computed once each with the data notes raised computing them (testable without rendering).
- :mod:`~rehabstats.report.disclosure`: the privacy rules of a report that leaves the team
  (pseudonyms, small-cell suppression), applied to every table of the analysis in one place.
- :mod:`~rehabstats.report.format`: numbers as text (rounding, intervals, the whole cohort's
  label); :mod:`~rehabstats.report.html`: report blocks and the HTML builders (escaping);
  :mod:`~rehabstats.report.plots`: figures.
- :mod:`~rehabstats.report.sections`: the one library call each notebook cell makes.
- :mod:`~rehabstats.report.render`: papermill and nbconvert: a notebook into one HTML file.
- :mod:`~rehabstats.report.kernel_state`: runs inside a kept kernel, resetting it between reports.

The names below are importable from here (``from rehabstats.report import REPORTS,
render_report``); each module is imported on first use, so that importing this package (and the
command line) stays quick.
"""

from __future__ import annotations

from rehabstats.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "REPORTS": "specs",
    "ReportParameter": "specs",
    "ReportSpec": "specs",
    "notebook_path": "specs",
    "parse_parameter_pairs": "specs",
    "report_names": "specs",
    "report_parameters": "specs",
    "report_spec": "specs",
    "validate_parameters": "specs",
    "PROVENANCE_MIMETYPE": "specs",
    "RenderError": "render",
    "RenderResult": "render",
    "WarmKernel": "render",
    "external_references": "render",
    "render_demo": "render",
    "render_report": "render",
    "report_pair_matches": "render",
    "template_dir": "render",
    "written_by_rehabstats": "render",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
