"""The web UI: server-rendered pages beside the API, in the same app (see docs/web.md)."""
