"""The Lambda adapter of the compute invoker port: ``lambda.invoke`` of the compute function."""

from __future__ import annotations

import json


class LambdaInvoker:
    """Invokes the compute function synchronously (``RequestResponse``) with a JSON event.

    Parameters
    ----------
    client : botocore Lambda client
        Built once at cold start; thread-safe, so reductions fan out over it.
    function_name : str
        The compute function's name or ARN.
    """

    #: A synchronous invocation answers at most 6 MB of JSON; base64 grows bytes by 4/3
    payload_limit = 4 << 20

    def __init__(self, client, function_name: str) -> None:
        self._lambda = client
        self.function_name = function_name

    def invoke(self, event: dict) -> dict:
        """Run one compute event; a crashed invocation comes back as a 502-style answer."""
        resp = self._lambda.invoke(
            FunctionName=self.function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        body = json.loads(resp["Payload"].read() or b"{}")
        if resp.get("FunctionError"):
            message = (
                body.get("errorMessage", "the compute function failed") if isinstance(body, dict) else body
            )
            return {"status": 502, "error": f"compute function error: {message}"}
        return body
