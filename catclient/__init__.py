"""catclient: a Caterva2-compatible client that reads big slices straight from S3.

Quick start::

    import catclient

    with catclient.Client("http://127.0.0.1:8000") as client:
        client.get_roots()
        ds = client.get("example/dir1/ds-2d.b2nd")
        ds[2:4, 3:6]            # numpy array
        ds.slice((slice(2, 4),))  # blosc2.NDArray

The command line client is ``catclient`` (or ``python -m catclient``).

The public names below are loaded on first use: the server imports
:mod:`catclient.wire` (what client and server share), and that must not load
the client library, httpx and sqlite into every cold start.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module defining it (imported on first access).
_LAZY = {
    "ChunkCache": "catclient.cache",
    "DEFAULT_URL": "catclient.client",
    "Client": "catclient.client",
    "Dataset": "catclient.objects",
    "File": "catclient.objects",
    "Group": "catclient.objects",
    "Root": "catclient.objects",
    "TransferStats": "catclient.stats",
    **{
        name: "catclient.errors"
        for name in (
            "BadRequest",
            "CatClientError",
            "IntegrityError",
            "NotFound",
            "NotSupported",
            "ServerError",
            "ServerUnavailable",
            "TooLarge",
            "Unauthorized",
        )
    },
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        # Not a lazy name: submodules (``catclient.wire``) are found by the import system
        raise AttributeError(f"module 'catclient' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
