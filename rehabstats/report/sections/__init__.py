"""Report sections: the one library call each notebook cell makes.

A report notebook is a ``parameters`` cell, ``analysis = sections.prepare(...)`` and then one
``sections.<name>(analysis)`` per cell. Each section returns a :class:`~rehabstats.report.html.
Block`, which displays as HTML in JupyterLab and in the rendered report: headings are the
notebook's markdown cells; a block holds figures, tables, captions and the notes of what the
section used.

A section lays out what the :class:`~rehabstats.report.analysis.Analysis` computed, as its
audience may see it (the analysis' disclosed tables): choosing, labelling, rounding
(:mod:`rehabstats.report.format`) and arranging (:mod:`rehabstats.report.html`,
:mod:`rehabstats.report.plots`). Where they live:

- :mod:`~rehabstats.report.sections.common`: sections both reports show (header, participant
  flow, adherence, pain, time to stage, relapse, the appendices) and :func:`section`, which
  every section is made with;
- :mod:`~rehabstats.report.sections.cohort_report`: at a glance, Table 1, the pain model,
  VISA-A, stage occupancy, protocol fidelity and exercise quality, the return to running;
- :mod:`~rehabstats.report.sections.clinic_audit`: the dashboard, the review list, the
  swimmer plot, the audit's settings.

A new section is a function ``(analysis, *, options) -> Block`` decorated with
:func:`section` in the module of the report(s) that show it, exported here.
"""

from rehabstats.report.analysis import Analysis, demo_cohort, prepare
from rehabstats.report.html import Block
from rehabstats.report.sections.clinic_audit import (
    audit_dashboard,
    audit_settings,
    review_list,
    swimmer,
)
from rehabstats.report.sections.cohort_report import (
    at_a_glance,
    checkpoint_fidelity,
    pain_model,
    return_to_running,
    stage_occupancy,
    table_one,
    visa_a,
)
from rehabstats.report.sections.common import (
    adherence,
    configuration,
    definitions,
    header,
    pain_monitoring,
    pain_trajectories,
    participant_flow,
    relapse,
    section,
    time_to_stage,
)

__all__ = [
    "Analysis",
    "Block",
    "adherence",
    "at_a_glance",
    "audit_dashboard",
    "audit_settings",
    "checkpoint_fidelity",
    "configuration",
    "definitions",
    "demo_cohort",
    "header",
    "pain_model",
    "pain_monitoring",
    "pain_trajectories",
    "participant_flow",
    "prepare",
    "relapse",
    "return_to_running",
    "review_list",
    "section",
    "stage_occupancy",
    "swimmer",
    "table_one",
    "time_to_stage",
    "visa_a",
]
