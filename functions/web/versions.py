"""The dataset page's versions (open any kept one) and the estimate of the slice it shows."""

from __future__ import annotations

from functions.engine.errors import BadRequest, DatasetNotFound
from functions.engine.spaces import Principal
from functions.services import Services
from functions.web import data, views

#: Versions listed on a dataset page (the API's /api/history pages through the rest)
VERSIONS_SHOWN = 20


def panels(
    services: Services, who: Principal, path: str, kind: str, page: views.TablePage, version: int | None
) -> dict:
    """``history`` (versions, newest first, the open one marked) and ``estimate`` (of the shown slice)."""
    out: dict = {"history": None, "estimate": None}
    try:
        answer = data.history(services, who, path, VERSIONS_SHOWN)
        opened = version or answer["current"]
        out["history"] = {
            "versions": [{**v, "open": v["version"] == opened} for v in answer["versions"]],
            "more": answer["more"],
            "current": answer["current"],
        }
    except (BadRequest, DatasetNotFound):
        pass  # a lazy expression's versions, say: the page shows without them
    if kind != "lazy":
        try:
            out["estimate"] = data.estimate(services, who, path, page.key() or None, version)
        except (BadRequest, DatasetNotFound):
            pass  # a container's member has no manifest of its own to estimate from
    return out
