"""Study time: from the cohort's tables to days and weeks of follow-up.

* :mod:`~rehabstats.time.timeline` -- the participant timeline (enrolment, withdrawal,
  ``obs_end``, ``follow_up_days``; ``docs/metrics.md`` §3) computed once per cohort and cut-off,
  :func:`~rehabstats.time.timeline.analysis_cutoff` (the one place the cut-off is decided),
  the rows of a table within follow-up (:func:`~rehabstats.time.timeline.observed_rows`), the
  window grid, the stage on a day, analysis groups, and
  :func:`~rehabstats.time.timeline.computation` (each data note once per metric call).
* :mod:`~rehabstats.time.keys` -- the one participant-key toolkit: a row's participant
  (position or per-row value) and (participant, day) keys, with the sorted-key helpers every
  metric family groups and joins with.
* :mod:`~rehabstats.time.tte` -- declarative time-to-event derivations (an event, its origin, a
  competing event -> one row per participant at risk), shared by stages and relapse.

Imports: :mod:`rehabstats.data`, :class:`~rehabstats.config.AnalysisConfig`,
:mod:`rehabstats.constants` and :mod:`rehabstats.errors`; never the metrics, statistics or
reports. Data flows one way: data -> time -> stats / metrics -> report.
"""
