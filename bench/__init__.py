"""Benchmarks: our stack vs Caterva2's own server vs raw S3, on the same data in one run (issue 8).

Run ``python -m bench`` (``make bench``); see BENCHMARKS.md.
"""
