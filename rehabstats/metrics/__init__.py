"""The metric families of the contract (``docs/metrics.md``) and the output files of
``rehabstats metrics``.

One module per family, each a set of plain functions ``fn(cohort, *, by=None, config=None)``
returning tidy DataFrames: :mod:`~rehabstats.metrics.adherence` (§4),
:mod:`~rehabstats.metrics.pain` (§5), :mod:`~rehabstats.metrics.visa`,
:mod:`~rehabstats.metrics.function_tests` and :mod:`~rehabstats.metrics.checkpoint` (§6),
:mod:`~rehabstats.metrics.stages` (§7), :mod:`~rehabstats.metrics.relapse` (§8),
:mod:`~rehabstats.metrics.quality` (§10), :mod:`~rehabstats.metrics.running` (§11), the clinic
review list and audit summary (:mod:`~rehabstats.metrics.review`), and
:mod:`~rehabstats.metrics.outputs`, which joins them into the output files (§9).

A new metric goes into its family's module (or a new one), with its thresholds in
:class:`~rehabstats.config.AnalysisConfig`, its time taken from :mod:`rehabstats.time` and its
estimator from :mod:`rehabstats.stats`; mark the public function
:func:`~rehabstats.time.timeline.computation` so that its data notes are issued once per call.
Add it to :mod:`~rehabstats.metrics.outputs` if it belongs in an output file.

Imports: :mod:`rehabstats.data`, :mod:`rehabstats.time`, :mod:`rehabstats.stats`,
:mod:`rehabstats.config` and :mod:`rehabstats.errors`, and each other's public functions (no
module imports another's private ``_name``); never the report layer, which calls the metrics.
Data flows one way: data -> time -> stats / metrics -> report.
"""
