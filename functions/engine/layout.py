"""Object keys of the storage layout (docs/ARCHITECTURE.md, "S3 layout")."""

from __future__ import annotations

from catclient.wire.digest import chunk_digest
from catclient.wire.digest import chunk_matches as chunk_matches

#: Content address of a compressed chunk (SHA-256 hex; one definition with the client's)
chunk_hash = chunk_digest

ROOTS_KEY = "roots.json"
SUBSCRIPTIONS_KEY = "s/subscriptions.json"


def chunk_key(digest: str) -> str:
    """Key of a chunk object; the first two hex digits spread keys over 256 S3 prefixes."""
    return f"c/{digest[:2]}/{digest}"


def manifest_key(root: str, path: str, version: int, content_hash: str) -> str:
    """Key of an immutable manifest; the hash suffix keeps racing publishers apart."""
    return f"m/{root}/{path}/{version}-{content_hash[:12]}.json"


def head_key(root: str, path: str) -> str:
    """Key of a dataset's head, the one mutable object per dataset."""
    return f"h/{root}/{path}.json"


def catalog_key(root: str) -> str:
    """Key of a root's catalog (what ``list`` reads in one GET)."""
    return f"r/{root}.json"


def fill_marker_key(root: str, path: str, nonce: str, nchunk: int) -> str:
    """Key of the marker that claims slot *nchunk* of a laid-out array being filled (created once)."""
    return f"w/{root}/{path}/{nonce}/{nchunk}"
def feed_prefix(root: str) -> str:
    """Prefix of a root's change feed (``functions.engine.feed``)."""
    return f"f/{root}/"


def feed_key(root: str, seq: int) -> str:
    """Key of the feed entry that catalog version *seq* committed; zero-padded so keys sort by *seq*."""
    return f"f/{root}/{seq:012d}.json"
