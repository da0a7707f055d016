"""Shared fixtures: a real PostgreSQL server for the database tests; the fingerprint of a
module's cohort read from a folder (what every other source must give for the same data); how
tests share workers.

The server is the throwaway cluster `.ci/run` starts (`.ci/postgres start DIR` prints its URL)
and exports as ``REHABSTATS_TEST_PG``: a superuser URL with its password. Each test that asks
for ``pg_database`` gets a new, empty database in it, dropped afterwards. Without the variable
those tests are skipped, saying so (CI always sets it).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ENV = "REHABSTATS_TEST_PG"

RENDERED_DEMO_MODULES = frozenset({"test_render", "test_html_browser", "test_polish", "test_print"})
"""Modules using the demo reports rendered once per process (``test_render.rendered_demo``)."""

DASK_CLUSTER_MODULES = frozenset({"test_cluster_report", "test_distributed", "test_run_dask"})
"""Modules using the Dask cluster started once per process (:func:`dask_scheduler`)."""

REPORT_KERNEL_MODULES = frozenset({"test_disclosure", "test_injection", "test_render_database"})
"""Modules rendering their reports in one kept report kernel (:func:`report_kernel`)."""


def worker_group(nodeid: str) -> str:
    """The pytest-xdist group of a test: its module (its module-scoped fixtures, e.g. a prepared
    analysis or rendered reports, are then made once), ``rendered_demo`` for the modules
    sharing the rendered demo reports (rendered once, not once per worker), ``dask_cluster``
    for those sharing a Dask cluster (started once) or ``report_kernel`` for those sharing a
    kept report kernel (started once)."""
    path = nodeid.split("::", 1)[0]
    module = path.rsplit("/", 1)[-1].removesuffix(".py")
    if module in RENDERED_DEMO_MODULES:
        return "rendered_demo"
    if module in REPORT_KERNEL_MODULES:
        return "report_kernel"
    return "dask_cluster" if module in DASK_CLUSTER_MODULES else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup`` by :func:`worker_group`: each group runs whole in one worker.

    pytest-xdist's own loadgroup reads groups from ``xdist_group`` marks by appending
    ``@group`` to each test id, which pytest 9.2 no longer lets a plugin change
    (pytest-dev/pytest-xdist#1386): the marks were silently ignored and a module's tests spread
    over both workers, each making the module's fixtures and the demo render. The scheduler
    here takes the group from the test id itself.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return ModuleGroups(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The groups holding slow tests (renders, browsers, killed runs) first, each group's tests
    in their order: with ``--no-loadscope-reorder`` (the default orders groups by their number
    of tests) the workers take them first, and the run does not end waiting for one worker
    that took a long group last."""
    slow = {worker_group(i.nodeid) for i in items if i.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: worker_group(item.nodeid) not in slow)  # a stable sort


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package once before the run starts its processes; skip the IRI grammars.

    The run starts some 150 Python processes (report kernels, commands, batch and Dask
    workers), each importing much of rehabstats. Where Python writes no bytecode
    (``PYTHONDONTWRITEBYTECODE``, as on some CI machines) each of them would compile those
    modules again, about 0.2 s of CPU a process; compiled here (by the main process, before any
    worker starts; ``__pycache__`` is git-ignored), they all read the bytecode instead.

    The test processes also keep jsonschema from compiling its IRI grammars, as the commands
    do (:func:`rehabstats.lazy.skip_iri_grammars`: 1.4 s of CPU in each process that imports
    nbformat; nothing checks the ``iri`` format). What the library and the commands import
    is tested in processes of their own (``tests/test_imports.py``).
    """
    from rehabstats.lazy import skip_iri_grammars

    skip_iri_grammars()
    if sys.dont_write_bytecode and not hasattr(config, "workerinput"):
        import compileall

        import rehabstats

        compileall.compile_dir(Path(rehabstats.__file__).parent, quiet=1)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection made (the imported libraries and test modules, several hundred
    thousand objects) out of the garbage collector's sight: its full collections, run every
    few thousand allocations of the tests, would otherwise traverse them all again (a third
    of the collector's time in the report and metrics tests)."""
    gc.collect()
    gc.freeze()


_dask_cluster = contextlib.ExitStack()
_dask_address: list[str] = []  # the running cluster's scheduler address, if any


@pytest.fixture
def dask_scheduler() -> str:
    """The address of a LocalCluster of 2 workers (1 GiB each), started by
    :func:`rehabstats.metrics.distributed.dask_client` when a test first asks for it and shared
    by :data:`DASK_CLUSTER_MODULES` (one group: their tests run one after another in one
    process). It is closed as soon as the group's last test is done (see
    :func:`pytest_runtest_teardown`): an idle cluster's heartbeats cost about a tenth of a core
    (scheduler and workers), which the rest of the run would otherwise pay."""
    if not _dask_address:
        from rehabstats.metrics.distributed import dask_client

        client = _dask_cluster.enter_context(dask_client(n_workers=2, memory_limit="1GiB"))
        assert len(client.scheduler_info()["workers"]) == 2
        _dask_address.append(client.scheduler.address)
    return _dask_address[0]


_report_kernel: list = []  # the kept report kernel, if one was started


@pytest.fixture(scope="module")
def report_kernel():
    """A report kernel kept across the reports that :data:`REPORT_KERNEL_MODULES` render
    (:class:`rehabstats.report.render.WarmKernel`, as a batch worker keeps one), for tests of
    what a report shows (disclosure control, escaping, a database source's credentials), not
    of how its kernel starts. A new kernel would cost some 3 s of CPU for each report (the
    process, the report libraries, the first report's imports); a report rendered in a kept
    kernel is the file a new kernel renders (``tests/report/test_warm_kernel.py``), and the
    reports of the commands and of ``render_report`` without ``kernel`` are rendered in new
    kernels by the other tests. It is stopped when the group's last test is done (see
    :func:`pytest_runtest_teardown`)."""
    if not _report_kernel:
        from rehabstats.report.render import WarmKernel

        _report_kernel.append(WarmKernel(reports_per_kernel=100))
    return _report_kernel[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After the test's own teardown: close the shared Dask cluster or report kernel when the
    next test is not one of the group sharing it (or there is none)."""
    result = yield
    following = None if nextitem is None else worker_group(nextitem.nodeid)
    if _dask_address and following != "dask_cluster":
        _close_dask_cluster()
    if _report_kernel and following != "report_kernel":
        _close_report_kernel()
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    _close_dask_cluster()
    _close_report_kernel()


def _close_report_kernel() -> None:
    while _report_kernel:
        _report_kernel.pop().close()


def _close_dask_cluster() -> None:
    _dask_address.clear()
    _dask_cluster.close()


@pytest.fixture(scope="module")
def folder_fingerprint(tables, tmp_path_factory) -> str:
    """The fingerprint of the module's ``tables`` written as a folder of CSV files and loaded
    back: the reference a database or REDCap source of the same data must match."""
    from rehabstats import load_cohort, write_cohort

    folder = write_cohort(tables, tmp_path_factory.mktemp("folder") / "cohort")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_cohort(folder).fingerprint()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The superuser URL of the test PostgreSQL server (the tests are skipped without one)."""
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        pytest.skip(
            f"no PostgreSQL server configured: set {PG_ENV} to a superuser URL "
            "(.ci/run starts one with .ci/postgres start DIR)"
        )
    pytest.importorskip("psycopg", reason="the [sql] extra is not installed")
    return url


def with_database(url: str, database: str, *, user: str | None = None) -> str:
    """``url`` pointing at another database (and user, without a password when given)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))


def without_password(url: str) -> tuple[str, str]:
    """The URL without its password (as a command line takes it), and the password."""
    parts = urlsplit(url)
    return with_database(url, parts.path.lstrip("/"), user=parts.username), parts.password or ""


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A new empty database: its superuser URL (with the password, for the Python API)."""
    import psycopg

    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(pg_server, name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
