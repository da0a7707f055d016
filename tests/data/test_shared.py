"""A batch run's validated cohorts, shared with its kernels: used only while the folder is
exactly as validated, with the same data warnings; otherwise the folder is loaded again."""

from __future__ import annotations

import os
import warnings

import pytest

import rehabstats.data.folder as folder_module
from rehabstats import simulate_tables, write_cohort
from rehabstats.batch import load_jobs, plan_jobs
from rehabstats.data.folder import load_cohort
from rehabstats.data.shared import SHARED_ENV, folder_state, load_shared, share_cohort


def loaded_with_warnings(source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohort = load_shared(source)
    return cohort, [str(w.message) for w in caught]


@pytest.fixture
def data(tmp_path):
    return write_cohort(simulate_tables(60, seed=4), tmp_path / "data")


@pytest.fixture
def shared(tmp_path, data, monkeypatch):
    """The folder validated and shared as a batch run does; the kernel's environment set."""
    root = tmp_path / "run"
    root.mkdir(mode=0o700)
    state = folder_state(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohort = load_cohort(data)
    assert caught, "the simulated cohort raises data warnings (what is replayed)"
    share_cohort(root, str(data), cohort, caught, state)
    monkeypatch.setenv(SHARED_ENV, str(root))
    return root, cohort, [str(w.message) for w in caught]


def refuse_to_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the folder was read again")

    monkeypatch.setattr(folder_module, "load_cohort", refuse)


def test_the_shared_cohort_is_used_with_the_same_warnings(shared, data, monkeypatch):
    _, cohort, messages = shared
    refuse_to_load(monkeypatch)  # so the cohort can only come from the shared copy
    got, replayed = loaded_with_warnings(str(data))
    assert got.fingerprint() == cohort.fingerprint()
    assert got.source == cohort.source and got.source_kind == "folder"
    assert replayed == messages


def test_a_changed_folder_is_loaded_again(shared, data, monkeypatch):
    _, cohort, _ = shared
    table = data / "participants.csv"
    stamp = table.stat().st_mtime_ns
    os.utime(table, ns=(stamp + 10**9, stamp + 10**9))  # same bytes, touched: not trusted
    refuse_to_load(monkeypatch)
    with pytest.raises(AssertionError, match="read again"):
        load_shared(str(data))


def test_without_the_run_s_environment_the_folder_is_loaded(shared, data, monkeypatch):
    monkeypatch.delenv(SHARED_ENV)
    refuse_to_load(monkeypatch)
    with pytest.raises(AssertionError, match="read again"):
        load_shared(str(data))


def test_a_copy_others_could_have_written_is_not_used(shared, data, monkeypatch):
    root, _, _ = shared
    (entry,) = root.glob("cohort-*.pickle")
    entry.chmod(0o620)  # group-writable: someone else may have replaced it
    refuse_to_load(monkeypatch)
    with pytest.raises(AssertionError, match="read again"):
        load_shared(str(data))


def test_another_folder_is_not_served_the_shared_cohort(shared, tmp_path, monkeypatch):
    other = write_cohort(simulate_tables(30, seed=9), tmp_path / "other")
    got, _ = loaded_with_warnings(str(other))
    assert got.n_participants == 30


def test_planning_shares_only_the_folders_of_reports_to_render(tmp_path, data):
    write_cohort(simulate_tables(20, seed=1), tmp_path / "unused")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        "defaults: {audience: internal}\njobs:\n"
        "  - {name: a, report: clinic_audit, data: data, output: a.html}\n"
        "  - {name: b, report: clinic_audit, data: unused, output: b.html, enabled: false}\n"
    )
    root = tmp_path / "run"
    root.mkdir(mode=0o700)
    tasks = plan_jobs(load_jobs(jobs), share_into=root)
    assert [t.name for t in tasks] == ["a"]
    (entry,) = root.glob("cohort-*.pickle")
    assert oct(entry.stat().st_mode & 0o777) == oct(0o600)
    os.environ[SHARED_ENV] = str(root)
    try:
        got, _ = loaded_with_warnings(str(data))
    finally:
        del os.environ[SHARED_ENV]
    assert got.n_participants == 60
