"""A device bridge and a service bridge talking through a real mosquitto."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowsync.events import DeltaReceived, IntentsConfirmed, Publish, Subscribe, UpdateAccepted
from tests.adapters.mqtt.conftest import Rig, fast_config, wait_for

if TYPE_CHECKING:
    from shadowsync.testing import InMemoryShadowService


def test_a_report_reaches_the_service(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    rig.service_bridge(service, service_errors)
    device = rig.device()
    assert wait_for(device.in_sync)

    events = device.bridge.report({"temp_c": 21.5, "mode": "eco"})

    # The call returns its own application events; the update went out on the client.
    assert [type(event).__name__ for event in events] == ["IntentsQueued", "StateChanged"]
    assert wait_for(lambda: device.in_sync() and device.recorder.of(IntentsConfirmed))
    document = service.document("lamp-1")
    assert document is not None
    assert document.reported == {"temp_c": 21.5, "mode": "eco"}
    assert device.session.cloud_document == document
    assert not any(isinstance(e, (Publish, Subscribe)) for e in device.recorder.events)
    assert device.recorder.errors == []
    assert service_errors == []


def test_a_desired_change_from_the_cloud_reaches_the_device_and_converges(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    cloud = rig.service_bridge(service, service_errors)
    device = rig.device(config=fast_config(auto_report=True))
    assert wait_for(device.in_sync)

    cloud.update("lamp-1", {"state": {"desired": {"on": True, "level": 40}}})

    assert wait_for(lambda: device.recorder.of(DeltaReceived))
    assert device.recorder.of(DeltaReceived)[0].state == {"on": True, "level": 40}

    def converged() -> bool:
        document = service.document("lamp-1")
        return document is not None and document.delta is None and device.in_sync()

    assert wait_for(converged)
    document = service.document("lamp-1")
    assert document is not None
    assert document.reported == {"on": True, "level": 40}
    assert device.session.cloud_document == document
    assert device.recorder.errors == []
    assert service_errors == []


def test_a_named_shadow_syncs_on_its_own_topics(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    cloud = rig.service_bridge(service, service_errors)
    device = rig.device("pump-7", "config", config=fast_config(auto_report=True))
    assert wait_for(device.in_sync)

    device.bridge.report({"firmware": "1.2.0"})
    cloud.update("pump-7", {"state": {"desired": {"rpm": 1200}}}, "config")

    def converged() -> bool:
        document = service.document("pump-7", "config")
        return (
            document is not None
            and document.reported == {"firmware": "1.2.0", "rpm": 1200}
            and device.in_sync()
        )

    assert wait_for(converged)
    assert service.document("pump-7") is None  # the classic shadow was never touched
    assert device.recorder.of(DeltaReceived)[-1].state == {"rpm": 1200}
    assert device.recorder.errors == []


def test_two_devices_share_one_service(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    rig.service_bridge(service, service_errors)
    lamp = rig.device("lamp-1")
    fan = rig.device("fan-2")
    assert wait_for(lambda: lamp.in_sync() and fan.in_sync())

    lamp.bridge.report({"on": True})
    fan.bridge.report({"speed": 3})

    def both() -> bool:
        one, two = service.document("lamp-1"), service.document("fan-2")
        return (
            one is not None
            and two is not None
            and one.reported == {"on": True}
            and two.reported == {"speed": 3}
        )

    assert wait_for(both)


def test_cloud_updates_and_device_reports_at_once_lose_nothing(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    cloud = rig.service_bridge(service, service_errors)
    # Nothing is lost here, so no request may time out: a report sent again after a timeout
    # is applied again (AWS does not deduplicate client tokens) and takes a second version,
    # which would make the count below depend on how loaded the machine is.
    device = rig.device(config=fast_config(request_timeout=30.0))
    assert wait_for(device.in_sync)
    start = service.document("lamp-1")
    first_version = start.version if start is not None else 0

    # The cloud writes from this thread while the bridge answers the device's updates on
    # paho's network thread: both go through the one service.
    cloud_updates = 0
    for index in range(30):
        device.bridge.report({f"r{index}": index})
        cloud.update("lamp-1", {"state": {"desired": {f"d{index}": index}}})
        cloud_updates += 1

    def settled() -> bool:
        document = service.document("lamp-1")
        return (
            document is not None
            and len(document.reported) == 30
            and device.in_sync()
            and not device.session.queue.pending()
        )

    assert wait_for(settled)
    document = service.document("lamp-1")
    assert document is not None
    assert document.desired == {f"d{index}": index for index in range(30)}
    assert document.reported == {f"r{index}": index for index in range(30)}
    # Every accepted update took exactly one version: none was lost or applied twice.
    device_updates = len(device.recorder.of(UpdateAccepted))
    assert document.version == first_version + cloud_updates + device_updates
    assert device.recorder.errors == []
    assert service_errors == []
