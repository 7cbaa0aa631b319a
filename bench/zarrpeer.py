"""The zarr-python 3 + obstore peer: the same array as zarr v3 in the same moto, read the zarr way.

Same shape, chunks and codec as the published ``.b2nd`` (Blosc zstd at clevel 5
with byte shuffle, one object per chunk), written once per run into a bucket of
its own on the moto server the stack uses; reads go through
``zarr.storage.ObjectStore`` over obstore's S3 store (Rust HTTP, its own
connection pool), which is how zarr-python 3 reads S3 without s3fs.

Only imported when the ``bench`` extra is installed (``pip install -e .[bench]``):
:func:`available` says whether it is.
"""

from __future__ import annotations

import numpy as np

BUCKET = "bench-zarr"


def available() -> bool:
    """Whether zarr and obstore can be imported."""
    try:
        import obstore  # noqa: F401
        import zarr  # noqa: F401
    except ImportError:
        return False
    return True


def _store(endpoint: str, *, read_only: bool):
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    s3 = S3Store(
        BUCKET,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True, "pool_max_idle_per_host": "64"},
    )
    return ObjectStore(s3, read_only=read_only)


def write(s3, endpoint: str, name: str, data: np.ndarray, chunks: tuple[int, ...]) -> None:
    """*data* as a zarr v3 array *name* (zstd clevel 5 + shuffle, as the ``.b2nd``) in :data:`BUCKET`."""
    import zarr
    from zarr.codecs import BloscCodec

    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    arr = zarr.create_array(
        _store(endpoint, read_only=False),
        name=name,
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        compressors=BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=data.dtype.itemsize),
        overwrite=True,
    )
    arr[...] = data


def reader(endpoint: str, name: str):
    """``read(key) -> numpy`` over the zarr array (opened once, as a client keeps it open)."""
    import zarr

    arr = zarr.open_array(_store(endpoint, read_only=True), path=name, mode="r")

    def read(key: tuple) -> np.ndarray:
        return arr[key] if key else arr[...]

    return read
