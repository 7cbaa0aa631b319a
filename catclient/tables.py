"""A CTable on the server: :class:`Table`, rows and columns read through ``/api/fetch``.

A CTable (a columnar ``.b2z`` table written by ``blosc2.CTable``) is one dataset:
``/api/info`` says ``kind: ctable`` with its ``nrows``, ``columns`` and their dtypes;
``/api/fetch`` with ``slice_`` answers those rows as a CTable frame, and with
``field`` one column of them as an array.
"""

from __future__ import annotations

import blosc2
import numpy as np

from catclient import wire
from catclient.errors import BadRequest
from catclient.objects import File

__all__ = ["Table", "table_records", "table_rows"]


class Table(File):
    """A table of rows and named columns (``client.get("root/people.b2z")``).

    ``t[2:5]`` and ``t[-1]`` read rows as a ``blosc2.CTable``; ``t["x"]`` reads one
    column as a numpy array (``t.column("x", slice(0, 10))`` some of its rows);
    :meth:`rows` gives tuples.  Rows are asked of the server, never the whole table
    unless asked for.
    """

    @property
    def nrows(self) -> int:
        """Number of rows."""
        return int(self.meta["nrows"])

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return list(self.meta["columns"])

    @property
    def ncols(self) -> int:
        """Number of columns."""
        return len(self.columns)

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        """The numpy dtype of each column that has one (variable-length columns have none)."""
        return {name: wire.dtype_from_str(d) for name, d in (self.meta.get("dtypes") or {}).items()}

    @property
    def schema(self) -> dict:
        """The table's schema as blosc2 describes it (``CTable.schema_dict()``)."""
        return dict(self.meta.get("schema_dict") or {})

    def __len__(self) -> int:
        return self.nrows

    def slice(self, key=None, as_blosc2: bool = True):
        """Rows *key* (an index, negative ones too, or a ``start:stop`` slice) as a ``blosc2.CTable``."""
        data = self._fetch({"slice_": table_rows(key)})
        return blosc2.ctable_from_cframe(data)

    def column(self, name: str, key=None) -> np.ndarray:
        """Rows *key* (all of them by default) of column *name*, as a numpy array."""
        if name not in self.columns:
            raise BadRequest(f"no column {name!r} in {self.path}; columns: {', '.join(self.columns)}")
        data = self._fetch({"slice_": table_rows(key), "field": name})
        return blosc2.ndarray_from_cframe(data)[()]

    def __getitem__(self, key):
        if isinstance(key, str) and key in self.columns:
            return self.column(key)
        return self.slice(key)

    def rows(self, start: int = 0, stop: int = 50) -> list[tuple]:
        """Rows ``start:stop`` (the first 50 by default) as tuples."""
        return [tuple(row) for row in self.slice(slice(start, stop))]

    def head(self, n: int = 5) -> list[tuple]:
        """The first *n* rows as tuples."""
        return self.rows(0, n)

    def _fetch(self, params: dict) -> bytes:
        return self.client._fetch_raw(str(self.path), params)

    def __repr__(self) -> str:
        return f"<Table: {self.path} ({self.nrows} rows x {self.ncols} columns)>"


def table_records(table, meta) -> np.ndarray:
    """The rows of a fetched ``blosc2.CTable`` as numpy records (columns without a dtype as objects)."""
    dtypes = {name: wire.dtype_from_str(d) for name, d in (meta.get("dtypes") or {}).items()}
    names = list(table.col_names)
    dtype = np.dtype([(name, dtypes.get(name, np.dtype(object))) for name in names])
    return np.array([tuple(row) for row in table], dtype=dtype)


def table_rows(key) -> str | None:
    """The ``slice_`` of a row selection (None: every row)."""
    if key is None or key == ():
        return None
    if isinstance(key, str):
        return key
    if isinstance(key, int | np.integer) or isinstance(key, slice):
        return wire.format_slice((key,))
    raise BadRequest(f"a table is read by rows: an index or a start:stop slice, not {key!r}")
