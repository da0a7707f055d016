"""Privacy for reports that leave the team: pseudonymous labels and small-cell suppression.

A report rendered for ``audience: external`` never shows a participant identifier and never shows
a count from 1 to ``threshold − 1`` (default 5), nor a number from which such a count can be
worked out. Internal reports (the default) are unchanged: clinicians need identifiers to act on
the review list.

Pseudonyms
----------
``ID-`` followed by the first 8 hex digits of HMAC-SHA256(key, participant id) (more digits only
when 8 would make two participants of the data share a label). The key is a secret held by the
data manager, read from the environment variable :data:`PSEUDONYM_KEY_ENV` or from a key file;
there is no default key. The same key gives the same labels in every report (so an external
reader can follow a participant from one monthly report to the next and the clinic can look a
label up); without the key the labels cannot be reversed. The key is never written into a
report, its notebook or its provenance.

Suppression rules (:func:`suppression_mask`, :func:`suppress_counts`)
---------------------------------------------------------------------
1. **Primary**: a count from 1 to ``threshold − 1`` is shown as ``<5`` (``<threshold``).
2. **True zeros are shown**: 0 stays 0 (the statistical convention; a zero says nothing about an
   individual, and suppressing zeros would make the ``<5`` cells easier to bound). A zero in a
   group that is itself suppressed is suppressed with it (rule 4).
3. **Complements**: a count whose complement in its denominator (``n − count``) is from 1 to
   ``threshold − 1`` is withheld (``*``): "57 of 60" tells who the 3 are not.
4. **Small denominators**: when a row's denominator (group size, n with a value, number at
   risk) is suppressed, every count of that row is withheld too.
5. **Derived values** (percentages, means of counts, rates, confidence limits) are withheld
   (``*``) whenever a count they derive from is suppressed.
6. **Secondary suppression**: in every set of cells that add up to a shown total (a row or column
   with a total, the groups and their ``Overall``, the splits of a flow diagram), a single
   withheld cell could be recovered by subtraction; the smallest other non-zero cell of that set
   is then withheld too (``*``), or the total itself when there is none. Repeated until nothing
   changes, so that a secondary cell cannot be recovered through another total either.
7. Withheld cells other than primary ones show ``*`` (withheld, any value), so the marker does
   not tell a reader that the cell is at least the threshold.

Computation and presentation stay apart: :func:`suppression_mask` returns which cells are
withheld and why; :func:`suppress_counts` turns it into a display table (markers as strings,
shown values unchanged), which :mod:`rehabstats.report.tables`' ``fmt_*`` functions pass through.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rehabstats.errors import ParameterError

__all__ = [
    "DEFAULT_THRESHOLD",
    "MIN_KEY_LENGTH",
    "PSEUDONYM_KEY_ENV",
    "SECONDARY",
    "collapse_rare",
    "Cell",
    "Relation",
    "pseudonymise",
    "primary_marker",
    "privacy_key",
    "redact_ids",
    "relations_from_lines",
    "suppress_counts",
    "suppression_mask",
]

PSEUDONYM_KEY_ENV = "REHABSTATS_PSEUDONYM_KEY"
"""Environment variable holding the pseudonym key (a secret, at least 16 characters)."""

MIN_KEY_LENGTH = 16
DEFAULT_THRESHOLD = 5
SECONDARY = "*"
"""Marker of a withheld cell that is not a primary small count (secondary, derived)."""

_KEY_HELP = (
    f"Set the environment variable {PSEUDONYM_KEY_ENV} to a secret of at least "
    f'{MIN_KEY_LENGTH} characters (e.g. the output of: python -c "import secrets; '
    'print(secrets.token_hex(32))"), kept by the data manager and the same for every report '
    "that should share labels, or give the report parameter pseudonym_key_file (a file "
    "holding the key, readable only by you). The key is never written into the report."
)


# ---- pseudonyms ----------------------------------------------------------------------------


def privacy_key(key_file: str | os.PathLike | None = None) -> bytes:
    """The pseudonym key: from ``key_file`` when given, else from :data:`PSEUDONYM_KEY_ENV`.

    Raises
    ------
    ParameterError
        When there is no key, or it is shorter than :data:`MIN_KEY_LENGTH` characters, saying
        how to set one. There is no default key.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ParameterError(
                f"pseudonym_key_file {path} cannot be read ({exc.strerror}). {_KEY_HELP}"
            ) from None
        where = f"pseudonym_key_file {path}"
    else:
        text = os.environ.get(PSEUDONYM_KEY_ENV, "").strip()
        where = f"environment variable {PSEUDONYM_KEY_ENV}"
        if not text:
            raise ParameterError(
                "an external report needs a pseudonym key to replace participant ids, and "
                f"none is set. {_KEY_HELP}"
            )
    if len(text) < MIN_KEY_LENGTH:
        raise ParameterError(
            f"the pseudonym key in the {where} is too short ({len(text)} characters; at least "
            f"{MIN_KEY_LENGTH} are needed so that labels cannot be reversed by guessing). "
            + _KEY_HELP
        )
    return text.encode("utf-8")


def pseudonymise(
    ids: pd.Series | Sequence[Hashable], *, key: bytes, digits: int = 8, prefix: str = "ID-"
) -> pd.Series:
    """Pseudonymous labels ``ID-3f9a1c2b`` of participant ids (keyed hash, HMAC-SHA256).

    Parameters
    ----------
    ids : Series or sequence
        Participant ids (compared as text; missing ids stay missing).
    key : bytes
        The secret key (:func:`privacy_key`); required, no default.
    digits : int
        Hex digits of the label (at least 8). Lengthened, for every label, when two different
        ids of ``ids`` would otherwise share one (collision-checked).

    Returns
    -------
    Series
        Labels (str), index and order of ``ids``; the same id always gets the same label for a
        key, different keys give unrelated labels.
    """
    if not key:
        raise ParameterError(f"pseudonymise needs a key. {_KEY_HELP}")
    if digits < 8:
        raise ValueError("digits must be at least 8")
    series = ids if isinstance(ids, pd.Series) else pd.Series(list(ids))
    present = series.notna()
    text = series[present].astype("str")
    unique = pd.unique(text.to_numpy())
    # one HMAC per distinct id (hashing has no array form); everything else is vectorised
    digests = np.array([hmac.new(key, u.encode("utf-8"), hashlib.sha256).hexdigest()
                        for u in unique], dtype=object)  # fmt: skip
    width = digits
    while width < 64:
        short = pd.Series(digests, dtype="str").str[:width]
        if not short.duplicated().any():
            break
        width += 2
    labels = pd.Series(prefix + short.to_numpy(), index=unique, dtype="str")
    out = pd.Series(pd.NA, index=series.index, dtype="str")
    out[present] = labels.reindex(text.to_numpy()).to_numpy()
    return out


_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")


def redact_ids(text: str, labels: Mapping[str, str]) -> str:
    """``text`` with every identifier of ``labels`` (id → label) replaced by its label.

    Identifiers are matched as whole tokens (letters, digits, ``_ . -``), so an id inside a
    longer word is left alone; used on data notes and warnings shown in external reports. An
    id holding other characters (a space, ``<``, ``&`` ...: ids are free text) is matched as it
    is, where no letter or digit touches it.
    """
    if not labels:
        return text

    def swap(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in labels:
            return labels[token]
        stripped = token.strip(".-_")  # "P000123." at the end of a sentence
        return token.replace(stripped, labels[stripped]) if stripped in labels else token

    other = sorted((i for i in labels if i and not _TOKEN.fullmatch(i)), key=len, reverse=True)
    if other:  # first: such an id can hold a token that is another id
        pattern = "|".join(re.escape(i) for i in other)
        text = re.sub(rf"(?<![A-Za-z0-9_])(?:{pattern})(?![A-Za-z0-9_])",
                      lambda m: labels[m.group(0)], text)  # fmt: skip
    return _TOKEN.sub(swap, text)


# ---- small-cell suppression ----------------------------------------------------------------


def primary_marker(threshold: int = DEFAULT_THRESHOLD) -> str:
    """``<5`` for the default threshold."""
    return f"<{threshold}"


Cell = tuple[Hashable, str]
Relation = tuple[Cell | None, list[Cell]]
"""(the total's cell, or None when the total is shown elsewhere; the cells adding up to it).
A cell is (index label, count column)."""


def relations_from_lines(
    table: pd.DataFrame,
    count_columns: Sequence[str],
    lines: Iterable[Sequence[str]],
    *,
    margin: tuple[str, object] | None = None,
) -> list[Relation]:
    """Additive relations of a tidy table: rows sharing the ``line`` columns add up.

    Each line is a list of columns; the rows with the same values of those columns are one set
    of cells (per count column) adding up to a total. When ``margin = (column, value)`` is
    given, the row of that set holding ``value`` in ``column`` is the total (e.g. ``("group",
    "Overall")``: the groups add up to the Overall row); otherwise the total is shown elsewhere
    (e.g. the group size in a column header).
    """
    out: list[Relation] = []
    for keys in lines:
        keys = list(keys)
        grouped = table.groupby(keys, sort=False, dropna=False).groups if keys else {
            (): table.index}  # fmt: skip
        for _, index in grouped.items():
            labels = list(index)
            total = None
            if margin is not None:
                col, value = margin
                is_total = table.loc[labels, col].astype("str") == str(value)
                if is_total.any():
                    total = labels[int(np.flatnonzero(is_total.to_numpy())[0])]
                    labels = [lab for lab in labels if lab != total]
            if len(labels) + (total is not None) < 2:
                continue
            out.extend(
                (None if total is None else (total, c), [(lab, c) for lab in labels])
                for c in count_columns
            )
    return out


def suppression_mask(
    table: pd.DataFrame,
    *,
    count_columns: Sequence[str],
    threshold: int = DEFAULT_THRESHOLD,
    relations: Iterable[Relation] = (),
    denominators: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Which count cells to withhold, and why (the computation behind :func:`suppress_counts`).

    Parameters
    ----------
    table : DataFrame
        Numeric table, unique index.
    count_columns : sequence of str
        Columns holding counts of participants (or events).
    threshold : int
        Counts from 1 to ``threshold − 1`` are suppressed (at least 2).
    relations : iterable of Relation
        Sets of cells adding up to a shown total (:func:`relations_from_lines`), for secondary
        suppression.
    denominators : mapping, optional
        ``{count column: denominator column}`` (both count columns): complements (rule 3) and
        small denominators (rule 4).

    Returns
    -------
    DataFrame
        Index of ``table``, the count columns, values ``""`` (shown), ``"primary"``,
        ``"complement"``, ``"denominator"`` or ``"secondary"``.
    """
    if int(threshold) < 2:
        raise ValueError("threshold must be at least 2 (counts 1 to threshold − 1 are hidden)")
    if not table.index.is_unique:
        raise ValueError("suppression needs a table with a unique index")
    counts = table[list(count_columns)].apply(pd.to_numeric, errors="coerce")
    small = (counts >= 1) & (counts < threshold)
    status = pd.DataFrame(np.where(small, "primary", ""), index=table.index,
                          columns=list(count_columns), dtype=object)  # fmt: skip
    for col, denom in (denominators or {}).items():
        rest = counts[denom] - counts[col]
        comp = (rest >= 1) & (rest < threshold) & (status[col] == "")
        status.loc[comp, col] = "complement"
    relations = list(relations)
    for _ in range(100):  # converges in a few rounds; the bound only guards against a bug
        changed = False
        for col, denom in (denominators or {}).items():
            hit = (status[denom] != "") & (status[col] == "") & counts[col].notna()
            if hit.any():
                status.loc[hit, col] = "denominator"
                changed = True
        for total, parts in relations:
            hidden = [cell for cell in parts if status.at[cell] != ""]
            total_hidden = total is not None and status.at[total] != ""
            if len(hidden) + total_hidden != 1:
                continue
            shown = [(counts.at[cell], i, cell) for i, cell in enumerate(parts)
                     if status.at[cell] == "" and counts.at[cell] > 0]  # fmt: skip
            if shown:
                status.at[min(shown)[2]] = "secondary"  # the smallest, first on ties
                changed = True
            elif total is not None and not total_hidden:
                status.at[total] = "secondary"
                changed = True
        if not changed:
            break
    return status


def suppress_counts(
    table: pd.DataFrame,
    *,
    count_columns: Sequence[str],
    derived: Mapping[str, Sequence[str]] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    lines: Iterable[Sequence[str]] = (),
    margin: tuple[str, object] | None = None,
    relations: Iterable[Relation] = (),
    denominators: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """A numeric table as it may be shown outside the team: small counts suppressed.

    Parameters
    ----------
    table : DataFrame
        Numeric table (counts, and values derived from them).
    count_columns : sequence of str
        Columns holding counts.
    derived : mapping, optional
        ``{column: [count columns it is derived from]}``: percentages, rates, means, confidence
        limits, withheld when any of their counts in the row is.
    threshold : int
        Counts 1 to ``threshold − 1`` are shown as ``<threshold``.
    lines, margin
        Sets of rows adding up to a total (:func:`relations_from_lines`) for secondary
        suppression; ``relations`` adds explicit ones.
    denominators : mapping, optional
        ``{count column: denominator column}`` (see :func:`suppression_mask`).

    Returns
    -------
    DataFrame
        Same index and columns; suppressed count cells hold ``"<5"`` (primary) or ``"*"``
        (other withheld), withheld derived cells ``"*"``; the other cells keep their values
        (object dtype in the affected columns). ``attrs["suppressed_cells"]`` counts the
        withheld count cells, ``attrs["threshold"]`` is the threshold.

    Notes
    -----
    The rules are listed in the module docstring (:mod:`rehabstats.report.disclosure`).
    """
    table = table.copy()
    derived = dict(derived or {})
    original_index = table.index
    if not table.index.is_unique:
        table = table.reset_index(drop=True)
    all_relations = relations_from_lines(table, count_columns, lines, margin=margin)
    all_relations += list(relations)
    mask = suppression_mask(table, count_columns=count_columns, threshold=threshold,
                            relations=all_relations, denominators=denominators)  # fmt: skip
    out = table.copy()
    marker = primary_marker(threshold)
    for col in count_columns:
        hidden = mask[col] != ""
        if hidden.any():
            out[col] = out[col].astype(object)
            out.loc[hidden, col] = np.where(mask.loc[hidden, col] == "primary", marker, SECONDARY)
    for col, sources in derived.items():
        if col not in out:
            continue
        hidden = (mask[[s for s in sources if s in mask]] != "").any(axis=1)
        if hidden.any():
            out[col] = out[col].astype(object)
            out.loc[hidden, col] = SECONDARY
    out.index = original_index
    out.attrs = dict(table.attrs)
    out.attrs["suppressed_cells"] = int((mask != "").to_numpy().sum())
    out.attrs["threshold"] = int(threshold)
    return out


def collapse_rare(
    frame: pd.DataFrame,
    column: str,
    *,
    count: str = "n",
    keys: Sequence[str] = (),
    total: tuple[str, object] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    other: str = "other reasons",
) -> pd.DataFrame:
    """Categories of ``column`` (e.g. free-text withdrawal reasons) seen fewer than ``threshold``
    times merged into one ``other`` category, so that a rare (possibly identifying) text is not
    shown at all.

    Rarity is judged on the rows selected by ``total = (column, value)`` (e.g. the Overall
    group) or on all rows; counts are summed over ``keys`` + ``column``.
    """
    if frame.empty:
        return frame
    basis = frame if total is None else frame[frame[total[0]].astype("str") == str(total[1])]
    seen = basis.groupby(column, sort=False)[count].sum()
    rare = set(seen.index[seen < threshold])
    if not rare:
        return frame
    out = frame.assign(**{column: frame[column].where(~frame[column].isin(rare), other)})
    keys = [k for k in keys if k != column]
    return out.groupby([*keys, column], sort=False, as_index=False)[count].sum()[frame.columns]
