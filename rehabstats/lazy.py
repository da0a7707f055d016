"""Lazy imports: a package's public names and heavy libraries, each imported on first use.

A package lists its names as ``{name: module}`` and hands the two functions
:func:`lazy_exports` returns to Python as the package's ``__getattr__`` and ``__dir__``
(PEP 562), so that importing the package imports none of its modules.

A module that uses a heavy library (scipy.stats, scipy.optimize) in a few functions binds it with
:func:`lazy_module` instead of importing it: the library is imported when one of those functions
first uses it, so that importing the module (and every command that does not call them) does
not pay for it.

:func:`skip_iri_grammars` keeps one library's import-time work out of the processes rehabstats
runs itself (its commands and batch workers).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports", "lazy_module", "skip_iri_grammars"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` for its lazily imported names.

    Parameters
    ----------
    package : str
        The package's ``__name__``, e.g. ``"rehabstats.report"``.
    exports : mapping of str to str
        Each exported name and the module it lives in, relative to ``package``
        (``{"render_report": "render"}`` for ``rehabstats.report.render.render_report``).

    Returns
    -------
    (__getattr__, __dir__)
        ``__getattr__(name)`` imports ``name`` from its module, keeps it in the package's
        namespace (so the next look-up is a plain attribute) and returns it; any other name
        raises AttributeError as Python would. ``__dir__()`` lists the package's namespace and
        its ``__all__``, sorted.
    """

    def get_attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def list_names() -> list[str]:
        namespace = vars(sys.modules[package])
        return sorted({*namespace, *namespace.get("__all__", ())})

    return get_attribute, list_names


class _LazyModule:
    """A stand-in for module ``name`` that imports it on the first attribute look-up."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazily imported module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """Module ``name``, imported when one of its attributes is first looked up.

    ``stats = lazy_module("scipy.stats")`` at the top of a module, then ``stats.chi2.ppf(...)``
    in a function, behaves as ``from scipy import stats`` except that scipy.stats is imported by
    the first call that uses it, not by importing the module. Each look-up after that is a
    ``sys.modules`` hit (``importlib.import_module``), negligible beside the call it serves.

    Parameters
    ----------
    name : str
        The module's full name, e.g. ``"scipy.stats"``.
    """
    return _LazyModule(name)


def skip_iri_grammars() -> None:
    """Keep jsonschema from compiling its IRI grammars in this process.

    papermill and nbconvert import nbformat, which imports jsonschema, whose format checkers
    import ``rfc3987_syntax`` when it is installed (jupyter-events asks for it); that module
    compiles some forty Earley grammars as it is imported: about 1.5 s of CPU in each process
    that reads or runs a notebook -- the ``report``, ``demo``, ``batch`` and ``notebook``
    commands, and each batch worker (python-jsonschema/jsonschema#1428). Nothing rehabstats
    does checks the ``iri`` format, so the processes it runs itself mark the module as absent,
    as jsonschema allows (it then has no ``iri`` checker). The library, imported into
    someone's own process, leaves it alone.
    """
    sys.modules.setdefault("rfc3987_syntax", None)
