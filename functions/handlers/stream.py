"""Streaming API function: the FastAPI app under uvicorn, behind the AWS Lambda Web Adapter.

The REST API invokes the function with ``InvokeWithResponseStream``; the adapter (the
public layer's ``/opt/bootstrap``, which starts ``run.sh``) turns each event into an HTTP
request to this server on ``127.0.0.1:$AWS_LWA_PORT`` and relays the answer as it is
written. A frame is assembled and sent a chunk at a time (:mod:`functions.engine.answers`),
so an answer of up to ``CAT_STREAM_LIMIT`` (Lambda's 200 MB) never sits whole in memory.
Mangum (:mod:`functions.handlers.api`) returns one buffered response: it cannot stream.

Off Lambda the same module serves the app the same way (the artifact smoke test runs it).
"""

from __future__ import annotations

import os

#: Where the adapter sends requests (its ``AWS_LWA_PORT``; 8080 is its default).
DEFAULT_PORT = 8080


def build_app():
    """The API over this process's services: clients and settings built once, at start-up."""
    from functions.api.app import create_app
    from functions.handlers.common import services

    return create_app(services())


def port() -> int:
    """The port to listen on: ``AWS_LWA_PORT``, else ``PORT``, else 8080 (as the adapter reads them)."""
    return int(os.environ.get("AWS_LWA_PORT") or os.environ.get("PORT") or DEFAULT_PORT)


def main() -> None:
    """Serve the app on 127.0.0.1 until the process is stopped (the adapter owns its lifetime)."""
    import uvicorn

    # One worker: a Lambda instance serves one request at a time. No access log: API
    # Gateway's access log has every request; the app logs what matters through Powertools.
    uvicorn.run(build_app(), host="127.0.0.1", port=port(), log_level="warning", access_log=False,
                lifespan="off")


if __name__ == "__main__":
    main()
