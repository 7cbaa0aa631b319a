"""Deployment and local-run tooling: local stack, template-derived resources, example data."""
