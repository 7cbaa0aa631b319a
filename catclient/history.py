"""Versions, the change feed and cost estimates (a mixin of :class:`catclient.Client`).

``Client.at_version(n)`` is a view of the same client (connections, cache, login)
whose reads all name version *n*: ``/api/info``, ``fetch``, ``chunk``, ``download``,
``plan`` and ``estimate`` carry ``?version=n``, so read plans, chunk fallbacks
and downloads of that view all read the one version.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from catclient import wire
from catclient.errors import BadRequest
from catclient.keys import normalize_key, path_str


class History:
    """Versions, changes, estimates (a mixin of :class:`catclient.Client`)."""

    def at_version(self, version: int | None):
        """A view of this client that reads *version* of every dataset (None: the current one).

        It shares this client's connections, credentials and chunk cache; closing
        it closes them too, so close only the client it came from.
        """
        if version is not None and (isinstance(version, bool) or int(version) < 1):
            raise BadRequest(f"a version is a number from 1, not {version!r}")
        view = copy.copy(self)
        view._version = None if version is None else int(version)
        view._plans_ok = self._plans_ok
        return view

    def history(self, path, *, limit: int = 50, before: int | None = None) -> dict:
        """The kept versions of a dataset, newest first (``GET /api/history``).

        Returns
        -------
        dict
            ``{"path", "current", "versions": [{"version", "mtime", "shape", "cbytes",
            "nchunks", "changed_chunks", "author", "current"}], "more"}``.
        """
        params = {"limit": int(limit)} | ({"before": int(before)} if before else {})
        return self._json("GET", "history", path_str(path), params=params)

    def changes(self, root, since: str | None = None, *, limit: int = 100) -> dict:
        """One page of a root's committed changes after the cursor *since* (``GET /api/changes``).

        Returns
        -------
        dict
            ``{"root", "changes": [...], "cursor", "more"}``: pass ``cursor`` back as
            *since* to continue; each change also carries the cursor after it.
        """
        params = {"limit": int(limit)} | ({"since": since} if since else {})
        return self._json("GET", "changes", path_str(root), params=params)

    def iter_changes(self, root, since: str | None = None) -> Iterator[dict]:
        """Every change of *root* after *since*, page after page, until the feed is exhausted."""
        while True:
            page = self.changes(root, since, limit=1000)
            yield from page["changes"]
            since = page["cursor"]
            if not page["more"]:
                return

    def sync(self, root, directory):
        """Bring a local directory in step with *root*, fetching only changed chunks (``catclient.sync``).

        Returns
        -------
        catclient.sync.SyncReport
        """
        from catclient.sync import sync

        return sync(self, path_str(root), directory)

    def estimate(self, path, key=None) -> dict:
        """What reading *key* of a dataset would do and cost, before it runs (``GET /api/estimate``).

        Returns
        -------
        dict
            ``chunks``, ``s3_gets``, ``compressed_bytes``, ``decompressed_bytes``,
            ``answer_bytes``, ``route`` and ``cost_usd`` (see docs/wire.md).
        """
        key, fancy = normalize_key(key, None)
        if fancy:
            raise BadRequest("estimates take a slice, not fancy indices")
        return self._json("GET", "estimate", path_str(path), params={"slice_": wire.format_slice(key)})
