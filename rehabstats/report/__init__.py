"""Reports: the registry of reports, rendering, the analysis behind a report, disclosure,
formatting, figures and the sections the notebooks call."""
