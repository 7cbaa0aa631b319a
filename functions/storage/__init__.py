"""Blob-store port and adapters (in-memory, S3)."""

from functions.storage.ports import BlobStore, NotFound, PreconditionFailed, StoreUnavailable

__all__ = ["BlobStore", "NotFound", "PreconditionFailed", "StoreUnavailable"]
