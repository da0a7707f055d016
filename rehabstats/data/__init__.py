"""The data layer: what a cohort is, and how one is read, checked and made.

* :mod:`~rehabstats.data.schema` -- the data contract, read from the Frictionless Table Schemas
  in ``data_schema/``, and :func:`~rehabstats.data.schema.validate_tables`, which checks tables
  against it (every problem at once: table, row, column, value, rule).
* :mod:`~rehabstats.data.cohort` -- :class:`~rehabstats.data.cohort.Cohort`, the validated
  tables with their default cut-off and fingerprint (and :meth:`Cohort.derived`, where the
  layers above keep what they compute from a cohort once).
* :mod:`~rehabstats.data.folder` -- the cohort folder: :func:`~rehabstats.data.folder.load_cohort`
  (CSV, Parquet or XLSX per table, nothing guessed) and
  :func:`~rehabstats.data.folder.write_cohort`.
* :mod:`~rehabstats.data.simulate` -- synthetic cohorts that satisfy the contract.
* :mod:`~rehabstats.data.sources` -- the kinds of cohort source and
  :func:`~rehabstats.data.sources.read_source`; their readers :mod:`~rehabstats.data.sql`
  (PostgreSQL, SQLite) and :mod:`~rehabstats.data.redcap` (REDCap exports and the API).

A new source goes here: a reader returning the raw tables
(:class:`~rehabstats.data.sources.SourceTables`) and one entry in
:data:`~rehabstats.data.sources.SOURCE_KINDS`, so that every source is checked the same way.

Imports: the data layer uses only :mod:`rehabstats.errors`, :mod:`rehabstats.constants` and
:mod:`rehabstats.files` from the rest of the package. It knows nothing of analyses (no
:class:`~rehabstats.config.AnalysisConfig`: a folder is valid or not whatever the analysis),
metrics or reports. Data flows one way: data -> time -> stats / metrics -> report.
"""
