"""catclient: a Caterva2-compatible client that reads big slices straight from S3.

Quick start::

    import catclient

    with catclient.Client("http://127.0.0.1:8000") as client:
        client.get_roots()
        ds = client.get("example/dir1/ds-2d.b2nd")
        ds[2:4, 3:6]            # numpy array
        ds.slice((slice(2, 4),))  # blosc2.NDArray

The command line client is ``catclient`` (or ``python -m catclient``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from catclient.cache import ChunkCache
from catclient.client import DEFAULT_URL, Client, Dataset, File, Group, Root, TransferStats
from catclient.errors import (
    BadRequest,
    CatClientError,
    IntegrityError,
    NotFound,
    NotSupported,
    ServerError,
    ServerUnavailable,
    TooLarge,
    Unauthorized,
)

__all__ = [
    "DEFAULT_URL",
    "BadRequest",
    "CatClientError",
    "ChunkCache",
    "Client",
    "Dataset",
    "File",
    "Group",
    "IntegrityError",
    "NotFound",
    "NotSupported",
    "Root",
    "ServerError",
    "ServerUnavailable",
    "TooLarge",
    "TransferStats",
    "Unauthorized",
    "__version__",
]
