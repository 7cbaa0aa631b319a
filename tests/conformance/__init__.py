"""Caterva2's own test suite, run against this project's local stack (``make conformance``)."""
