"""Make moto's conditional PUTs atomic, as S3's are.

The storage engine relies on S3 applying ``If-Match`` / ``If-None-Match`` atomically: of
writers holding the same etag, exactly one wins.  moto (5.2.5) checks the condition in
``S3Response.put_object`` and stores the object later in ``S3Backend.put_object``, with no
lock between, so two racing writers can both win and one catalog update is silently
lost.  Seen as a rare flake of ``tests/test_publish.py`` (about 1 round in 100 of six
racing publishers); with the gap widened by 1 ms, 15 rounds of 15 lost entries without
this patch and none with it (``tests/test_moto_patch.py``).  The local stack and the
tests emulate S3, so they must not be weaker than it: conditional PUTs are serialised
here; unconditional ones are not.

``apply()`` patches the moto of this process (idempotent); the local stack runs moto's
server as ``python -m infra.moto_patch``, which applies it and then runs moto's ``main``.
"""

from __future__ import annotations

import sys
import threading

_LOCK = threading.Lock()


def apply() -> None:
    """Serialise moto's conditional PUTs in this process (once)."""
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    if getattr(original, "_atomic_conditions", False):
        return

    def put_object(self):
        if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
            with _LOCK:  # the condition check and the store, as one step
                return original(self)
        return original(self)

    put_object._atomic_conditions = True
    S3Response.put_object = put_object


def main(argv: list[str] | None = None) -> None:
    """Run moto's server with atomic conditional PUTs (what the local stack starts)."""
    apply()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
