"""Column helpers over Arrow buffers: text lookups without Python objects, and memory.

pandas keeps text in Arrow arrays (``str`` dtype); looking values up through a pandas ``Index``
turns millions of them into Python strings first. These helpers work on the Arrow buffers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "arrow_text",
    "categorical_text",
    "may_need_strip",
    "positions_in",
    "release_unused_memory",
]


def arrow_text(values: pd.Series) -> object:
    """A text column as one Arrow string array (Arrow-backed text: its buffers, no copy)."""
    import pyarrow as pa

    array = values.array
    if hasattr(array, "__arrow_array__"):
        found = array.__arrow_array__()
        if isinstance(found, pa.ChunkedArray):
            found = found.combine_chunks() if found.num_chunks != 1 else found.chunk(0)
        if pa.types.is_string(found.type) or pa.types.is_large_string(found.type):
            return found
    return pa.array(values.astype(object).where(values.notna(), None), type=pa.string())


def categorical_text(values: pd.Series) -> pd.Series:
    """A categorical column of text as ``str`` text, decoded by Arrow from its codes.

    The same values as ``values.astype("str")`` (missing stays missing), without a Python
    string per row: a Parquet file written from a cohort keeps ``participant_id`` and the
    enums dictionary-encoded, and 13 million diary rows would otherwise become 13 million
    Python objects on the way to text.
    """
    import pyarrow as pa

    codes = values.cat.codes.to_numpy()
    categories = values.cat.categories.astype("str").to_numpy(dtype=object)
    dictionary = pa.array(categories, type=pa.large_string())
    indices = pa.array(codes, mask=codes < 0)
    decoded = pa.DictionaryArray.from_arrays(indices, dictionary).dictionary_decode()
    dtype = pd.StringDtype("pyarrow", na_value=np.nan)  # the ``str`` dtype
    return pd.Series(
        dtype.__from_arrow__(pa.chunked_array([decoded])), index=values.index, name=values.name
    )


def positions_in(values: pd.Series, keys: pd.Index | list) -> np.ndarray:
    """The position of each text value among the distinct ``keys``; -1 where missing or absent.

    Arrow's hash lookup on the strings' buffers: no Python object per value (a pandas
    ``Index.get_indexer`` converts millions of Arrow strings to Python strings first).
    """
    import pyarrow.compute as pc

    text = arrow_text(values)
    key_text = arrow_text(pd.Series(keys, dtype="str")).cast(text.type)
    found = pc.index_in(text, value_set=key_text)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)


def release_unused_memory() -> None:
    """Return the memory Arrow's allocator keeps after freeing (e.g. a table just converted).

    Arrow's default allocator (mimalloc or jemalloc) holds freed pages for reuse; after a
    large table is read and converted they stay in the process's resident memory although
    nothing uses them. Cheap (milliseconds); the next allocation takes pages back as needed.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_ASCII_SPACE[128:] = True  # a multi-byte character might be a Unicode space: look closer


def may_need_strip(values: pd.Series) -> bool:
    """Whether stripping an Arrow-backed text column could change it: False when no value is
    empty and none begins or ends with a blank (or a non-ASCII byte).

    Reads the first and last byte of each value from the Arrow buffers (no string is built),
    so that a clean column of millions of ids is not copied to strip nothing. Whitespace as
    Python's ``str.strip`` (and Arrow's ``utf8_trim_whitespace``) sees it: ASCII tab to
    carriage return, the separators 0x1c-0x1f and space; any non-ASCII byte at either end
    answers True.
    """
    import pyarrow as pa

    array = values.array
    if not hasattr(array, "__arrow_array__"):
        return True
    found = array.__arrow_array__()
    chunks = found.chunks if isinstance(found, pa.ChunkedArray) else [found]
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return True
        if len(chunk) == chunk.null_count:
            continue
        _, offsets_buffer, data_buffer = chunk.buffers()
        width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(offsets_buffer, dtype=width)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        starts, ends = offsets[:-1], offsets[1:]
        valid = (
            np.ones(len(chunk), dtype=bool)
            if chunk.null_count == 0
            else chunk.is_valid().to_numpy(zero_copy_only=False)
        )
        if np.any(valid & (ends == starts)):
            return True  # an empty value: missing after stripping
        data = np.frombuffer(data_buffer, dtype=np.uint8)
        first = data[starts[valid]]
        last = data[ends[valid] - 1]
        if _ASCII_SPACE[first].any() or _ASCII_SPACE[last].any():
            return True
    return False
