"""Adapters of the domain's ports (:mod:`functions.engine.ports`): S3, SNS, Lambda, Cognito, in-process."""
