"""Display formatting: numbers, counts, intervals and p-values as text, and tables of text.

The last step before HTML (:mod:`rehabstats.report.html`): numbers stay unrounded until here.
Every ``fmt_*`` function passes a suppression marker (``<5``, ``*``; a string put in a numeric
cell by :mod:`rehabstats.report.disclosure`) through unchanged and shows a missing value as an
en dash. :func:`group_label` is the one place the whole cohort (the group
:data:`rehabstats.constants.OVERALL`) gets its displayed name.
"""

from __future__ import annotations

import math

import pandas as pd

from rehabstats.constants import OVERALL, OVERALL_LABEL

__all__ = [
    "fmt_ci",
    "fmt_count",
    "fmt_count_pct",
    "fmt_mean_sd",
    "fmt_median_iqr",
    "fmt_num",
    "fmt_p",
    "fmt_pct",
    "fmt_setting",
    "format_flow",
    "format_table_one",
    "group_label",
]


def group_label(group: object, *, whole: str | None = None) -> str:
    """How a group is shown: its name; the whole cohort (the group ``all``) by its label.

    The whole cohort is :data:`~rehabstats.constants.OVERALL_LABEL` (``Overall``) in a table
    beside the groups, and ``All`` followed by ``whole`` where it stands on its own or names
    what it counts (``whole="participants"``: ``All participants``; ``"sites"``: ``All
    sites``; ``""``: ``All``).
    """
    if str(group) != OVERALL:
        return str(group)
    return OVERALL_LABEL if whole is None else f"All {whole}".rstrip()


def fmt_setting(value: object, *, unset: str = "not set") -> str:
    """A parameter's or setting's value as a reader writes it, never a Python repr.

    ``None`` is ``unset`` (``"not set"``: the description says what that means), booleans
    ``yes``/``no``, lists and tuples their items joined by commas (``recorded, pain,
    regression``; an empty one ``none``), mappings ``key: value`` pairs, numbers without
    trailing zeros (``0.95``, ``4``), anything else its text.
    """
    if value is None:
        return unset
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(fmt_setting(v, unset=unset) for v in items) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt_setting(v, unset=unset)}" for k, v in value.items()) or "none"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else fmt_num(value)
    return str(value)


def _missing(x: object) -> bool:
    try:
        return x is None or x is pd.NA or bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _withheld(*values: object) -> str | None:
    """The marker of the first value that is a string (a suppressed cell, e.g. ``<5``, ``*``)."""
    for v in values:
        if isinstance(v, str):
            return v
    return None


def fmt_count(x: object) -> str:
    """A count; a suppression marker (``<5``, ``*``) as it is; an en dash for missing."""
    if isinstance(x, str):
        return x
    return "–" if _missing(x) else str(int(x))  # type: ignore[call-overload]


def fmt_num(x: object, digits: int = 1) -> str:
    """A number with fixed decimals; an en dash for missing; a suppression marker as it is."""
    if isinstance(x, str):
        return x
    if _missing(x):
        return "–"
    x = float(x)  # type: ignore[arg-type]
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    text = f"{x:.{digits}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def fmt_pct(p: object, digits: int = 0) -> str:
    """A proportion (0-1) as a percentage."""
    if isinstance(p, str):
        return p
    return "–" if _missing(p) else f"{fmt_num(100 * float(p), digits)}%"  # type: ignore[arg-type]


def fmt_count_pct(count: object, percent: object, digits: int = 1) -> str:
    """``n (p%)`` from a count and a percentage (0-100); a withheld count or % shows its marker."""
    if isinstance(count, str):
        return count
    if isinstance(percent, str):
        return f"{int(count)} ({percent})"  # type: ignore[call-overload]
    if _missing(count):
        return "–"
    return f"{int(count)} ({fmt_num(percent, digits)}%)"  # type: ignore[call-overload]


def fmt_mean_sd(mean: object, sd: object, digits: int = 1) -> str:
    """``mean (SD)``."""
    if (w := _withheld(mean, sd)) is not None:
        return w
    if _missing(mean):
        return "–"
    return f"{fmt_num(mean, digits)} ({fmt_num(sd, digits)})"


def fmt_median_iqr(median: object, q1: object, q3: object, digits: int = 1) -> str:
    """``median [Q1, Q3]``."""
    if (w := _withheld(median, q1, q3)) is not None:
        return w
    if _missing(median):
        return "–"
    return f"{fmt_num(median, digits)} [{fmt_num(q1, digits)}, {fmt_num(q3, digits)}]"


def fmt_ci(low: object, high: object, digits: int = 1, *, percent: bool = False) -> str:
    """``low to high`` (a CI); percentages of proportions with ``percent``."""
    if (w := _withheld(low, high)) is not None:
        return w
    if _missing(low) or _missing(high):
        return "–"
    if percent:
        return f"{fmt_pct(low, digits)} to {fmt_pct(high, digits)}"
    return f"{fmt_num(low, digits)} to {fmt_num(high, digits)}"


def fmt_p(p: object) -> str:
    """A p-value: 3 decimals, ``<0.001`` below."""
    if _missing(p):
        return "–"
    p = float(p)  # type: ignore[arg-type]
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_table_one(summary: pd.DataFrame, smd: pd.DataFrame, *, digits: int = 1) -> pd.DataFrame:
    """Table 1 as display strings: rows = characteristics, columns = Overall, groups, SMD.

    ``summary`` and ``smd`` are :func:`rehabstats.stats.summaries.table_one`'s, as computed or
    as disclosed (a suppression marker in a cell is shown as it is).

    The index has two levels (characteristic, statistic/level). The first row gives each
    group's size; a ``Missing`` row follows any variable with missing values.
    """
    groups: list[str] = summary.attrs.get("groups", [OVERALL])
    sizes: dict[str, int] = summary.attrs.get("n", {})
    has_groups = len(groups) > 1
    columns = [
        f"{group_label(g)} (n = {sizes.get(g, 0)})" if g in sizes else group_label(g)
        for g in groups
    ]
    index: list[tuple[str, str]] = [("Participants", "n")]
    body: list[list[str]] = [[f"{sizes.get(g, 0)}" for g in groups] + ([""] if has_groups else [])]
    smd_by_var = dict(zip(smd["variable"], smd["smd"], strict=True))
    for variable, block in summary.groupby("variable", sort=False):
        label = block["label"].iloc[0]
        kind = block["kind"].iloc[0]
        smd_text = fmt_num(smd_by_var.get(variable, float("nan")), 2)
        if kind == "categorical":
            levels = list(dict.fromkeys(block["level"]))
            for i, level in enumerate(levels):
                cells = []
                for g in groups:
                    row = block[(block["group"] == g) & (block["level"] == level)]
                    cells.append(
                        fmt_count_pct(row["count"].iloc[0], row["percent"].iloc[0], digits)
                        if len(row)
                        else ""
                    )
                index.append((label, f"{level}, n (%)"))
                body.append(cells + ([smd_text if i == 0 else ""] if has_groups else []))
        else:
            cells = []
            for g in groups:
                row = block[block["group"] == g].iloc[0]
                if kind == "median":
                    cells.append(fmt_median_iqr(row["median"], row["q1"], row["q3"], digits))
                else:
                    cells.append(fmt_mean_sd(row["mean"], row["sd"], digits))
            stat = "median [Q1, Q3]" if kind == "median" else "mean (SD)"
            index.append((label, stat))
            body.append(cells + ([smd_text] if has_groups else []))
        missing = block.drop_duplicates("group").set_index("group")["missing"]
        # a suppression marker (str) stands for a withheld, non-zero count
        if pd.to_numeric(missing, errors="coerce").fillna(1).sum() > 0:
            index.append((label, "missing, n"))
            body.append(
                [fmt_count(missing.get(g, 0)) for g in groups] + ([""] if has_groups else [])
            )
    out = pd.DataFrame(
        body,
        index=pd.MultiIndex.from_tuples(index, names=["characteristic", ""]),
        columns=columns + (["SMD"] if has_groups else []),
    )
    return out


def format_flow(flow: pd.DataFrame) -> pd.DataFrame:
    """Flow counts as display strings: rows = steps, columns = groups (Overall first), cells
    ``n (%)`` (:func:`rehabstats.metrics.flow.flow_counts`, as computed or as disclosed)."""
    wide = flow.assign(
        text=[fmt_count_pct(n, pct, 0) for n, pct in zip(flow["n"], flow["percent"], strict=True)]
    )
    out = wide.pivot(index="label", columns="group", values="text")
    steps = list(dict.fromkeys(flow["label"]))
    groups = list(dict.fromkeys(flow["group"]))
    out = out.loc[steps, groups]
    out.index.name = "step"
    out.columns = [group_label(g) for g in groups]
    return out
