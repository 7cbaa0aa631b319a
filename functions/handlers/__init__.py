"""Thin Lambda entry points: parse the event, call domain code, log and emit metrics."""
