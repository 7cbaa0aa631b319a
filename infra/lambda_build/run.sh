#!/bin/sh
# StreamFunction's handler: the Lambda Web Adapter (/opt/bootstrap) runs this script, waits
# until the app answers its readiness probe, then relays every event to it over HTTP.
# The project's code is in the function (LAMBDA_TASK_ROOT), its dependencies in DepsLayer.
set -e
ROOT="${LAMBDA_TASK_ROOT:-$(cd "$(dirname "$0")" && pwd)}"
export PYTHONPATH="$ROOT:/opt/python${PYTHONPATH:+:$PYTHONPATH}"
exec "${CAT_PYTHON:-python3}" -m functions.handlers.stream
