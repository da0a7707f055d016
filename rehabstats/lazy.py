"""Lazy exports: a package's public names, each imported from its module on first use.

A package lists its names as ``{name: module}`` and hands the two functions
:func:`lazy_exports` returns to Python as the package's ``__getattr__`` and ``__dir__``
(PEP 562), so that importing the package imports none of its modules.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


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
