"""Scheduled batch runs: job files, planning, the worker pool, the run lock and the index page."""
