"""Unattended report runs: a job file (YAML) rendered into many reports, safely and incrementally.

``rehabstats batch JOBS.yaml`` (``docs/batch.md`` describes the job file key by key) runs, in
this order, one module each:

1. :mod:`~rehabstats.batch.jobfile` -- **the job file**: YAML read strictly (a key given twice
   is an error), every key checked, ``defaults`` applied, relative paths made absolute
   (:func:`load_jobs` -> :class:`~rehabstats.batch.jobfile.JobFile` of
   :class:`~rehabstats.batch.jobfile.Job`); every problem at once, or
   :class:`~rehabstats.errors.JobFileError` and nothing runs.
2. :mod:`~rehabstats.batch.lock` -- **the lock** of the output folder (:class:`RunLock`,
   ``flock``): a second overlapping run exits at once with :data:`EXIT_LOCKED`
   (:class:`~rehabstats.errors.BatchLockedError`), or waits.
3. :mod:`~rehabstats.batch.plan` -- **planning and hashing** (:func:`plan_jobs`): each data
   folder loaded and validated once, jobs fanned out, output paths kept inside the output
   folder and apart from each other, parameters validated, the inputs of each report hashed and
   compared with its last successful run: up to date reports are skipped. A job with missing
   data, an invalid cohort or a bad parameter fails here, alone.
4. :mod:`~rehabstats.batch.run` -- **the run** (:func:`run_batch`): a worker process per report,
   at most ``workers`` at a time, each rendering into a private folder and moving the notebook
   and the HTML into place together; signals stop the workers; the results
   (:class:`BatchResult`, :class:`JobResult`) and the exit code (``EXIT_*``).
5. :mod:`~rehabstats.batch.manifest` -- **the manifest** of each report: what the run did, the
   inputs, the last successful run. :mod:`~rehabstats.batch.index` -- **the index page**
   (:func:`write_index`) listing every report of the output folder.

:mod:`~rehabstats.batch.outputs` writes inside the output folder only, through
:mod:`rehabstats.files` (the atomic writer every output of rehabstats uses).
"""

from rehabstats.batch.index import write_index
from rehabstats.batch.jobfile import load_jobs
from rehabstats.batch.lock import RunLock
from rehabstats.batch.plan import plan_jobs
from rehabstats.batch.run import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_OK,
    BatchResult,
    JobResult,
    run_batch,
)

__all__ = [  # in the order of a run
    "load_jobs",
    "RunLock",
    "plan_jobs",
    "run_batch",
    "BatchResult",
    "JobResult",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_LOCKED",
    "write_index",
]
