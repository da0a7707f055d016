"""Estimators, each validated against R (``tests/results/``).

* :mod:`~rehabstats.stats.survival` -- Kaplan-Meier with R ``survfit``'s confidence limits and
  medians, Aalen-Johansen cumulative incidence (statsmodels), and exact Poisson rates and rate
  ratios (scipy; R ``poisson.test``).
* :mod:`~rehabstats.stats.mixed` -- the trajectory model's exact REML fit with Satterthwaite
  degrees of freedom (lme4 / lmerTest's definitions).

These take arrays and plain tables, not cohorts: a metric family turns the cohort into
durations or observations (with :mod:`rehabstats.time`) and calls them. A new estimator goes
here when no well-kept library does the job.

Imports: numpy, scipy, pandas, statsmodels and :mod:`rehabstats.errors` only -- nothing of the
data, time, metrics or report layers. Data flows one way: data -> time -> stats / metrics ->
report.
"""
