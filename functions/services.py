"""The bundle of domain objects a process builds once and hands to the API and handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from functions.engine.events import EventSink
from functions.engine.publish import Publisher
from functions.engine.reader import Region
from functions.engine.service import ReadService
from functions.settings import Settings


@dataclass
class Services:
    """What handlers and the API need, built once per process."""

    settings: Settings
    region: Region
    publisher: Publisher
    events: EventSink
    read: ReadService = field(init=False)
    clients: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.read = ReadService(
            self.region,
            response_limit=self.settings.response_limit,
            presign_ttl=self.settings.presign_ttl,
        )
