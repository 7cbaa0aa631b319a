"""SNS adapter of the event port: one message per committed version."""

from __future__ import annotations

import json

from functions.engine.model import ChangeEvent


class SnsSink:
    """Publishes change events to a topic, with ``type`` and ``root`` as attributes for filtering."""

    def __init__(self, client, topic_arn: str) -> None:
        self._sns = client
        self.topic_arn = topic_arn

    def emit(self, event: ChangeEvent) -> None:
        """Publish *event*; raises botocore errors (the commit already happened, callers log them)."""
        self._sns.publish(
            TopicArn=self.topic_arn,
            Message=json.dumps(event.to_json()),
            MessageAttributes={
                "type": {"DataType": "String", "StringValue": event.type},
                "root": {"DataType": "String", "StringValue": event.root},
            },
        )
