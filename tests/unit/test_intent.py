"""Intents: the report intents a session builds from checked leaves equal the checked ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shadowsync import HLCStamp
from shadowsync._device.intent import Intent, report_intent, stored_intent
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shadowsync._json import JSONValue

STAMP = HLCStamp(wall_ms=1_700_000_000_000, counter=3, node="lamp")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("on",), True),
        (("light", "level"), 80),
        (("name",), 'é ünïcode \\ " ok'),
        (("list",), [1, [2.5, "x"], {"a": 1}]),
        (("deep", "er"), {"a": {"b": {"c": []}}}),
        (("gone",), None),
        (("empty",), {}),
    ],
)
def test_a_report_intent_is_the_intent_its_fields_make(
    path: tuple[str, ...], value: JSONValue
) -> None:
    fields = {
        "thing_name": "lamp",
        "shadow_name": "cfg",
        "path": path,
        "value": value,
        "created_at": 1_700_000_000,
        "stamp": STAMP,
    }
    fast, checked = report_intent(**fields), Intent(kind="report", **fields)  # type: ignore[arg-type]
    assert fast == checked
    assert (fast.size, fast.depth) == (checked.size, checked.depth)
    stored = stored_intent(fast, 9)
    assert stored == stored_intent(checked, 9)
    assert (stored.seq, stored.size, stored.depth) == (9, checked.size, checked.depth)


def test_a_report_intent_refuses_the_acknowledgement_key() -> None:
    with pytest.raises(InvalidArgumentError, match="acknowledgements"):
        report_intent(
            thing_name="lamp",
            shadow_name=None,
            path=("$ack",),
            value=1,
            created_at=0,
            stamp=STAMP,
        )
