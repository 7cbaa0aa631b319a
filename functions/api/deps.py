"""What every router takes from a request: the process's services."""

from __future__ import annotations

from fastapi import Request

from functions.services import Services


def services_of(request: Request) -> Services:
    """The :class:`~functions.services.Services` built once for this process (``create_app``)."""
    return request.app.state.services
