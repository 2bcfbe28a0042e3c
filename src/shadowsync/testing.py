"""Test aids for users of shadowsync: an AWS-faithful, in-memory shadow service and a clock.

`InMemoryShadowService` behaves like the AWS IoT Device Shadow service (data plane and
reserved MQTT topics) without a network: the same response bodies, the same error codes and
texts, delete keeping the version sequence for 48 hours, pagination of named shadows. Use it in
your own tests instead of a mock:

```pycon
>>> from shadowsync.testing import InMemoryShadowService, ManualClock
>>> clock = ManualClock(1700000000)
>>> service = InMemoryShadowService(clock=clock)
>>> service.update("lamp", b'{"state": {"desired": {"on": true}}}').delta["state"]
{'on': True}
>>> service.get("lamp")["state"]["delta"]
{'on': True}

```
"""

from __future__ import annotations

from shadowsync._fakes.loopback import FaultInjector, Faults, LoopbackPair
from shadowsync._fakes.service import (
    VERSION_RETENTION_SECONDS,
    Clock,
    InMemoryShadowService,
    ManualClock,
)

__all__ = [
    "Clock",
    "FaultInjector",
    "Faults",
    "InMemoryShadowService",
    "LoopbackPair",
    "ManualClock",
    "VERSION_RETENTION_SECONDS",
]
