"""The demo is the README's first command; it must run and tell the story it promises."""

from __future__ import annotations

import io

from shadowsync import demo


def test_demo_runs_and_shows_each_step() -> None:
    out = io.StringIO()
    demo.run(out)
    text = out.getvalue()
    assert "$aws/things/thermostat-42/shadow/update/delta" in text
    assert '"code": 409, "message": "Version conflict"' in text
    assert "413 The payload exceeds the maximum size allowed" in text
    assert "415 Unsupported documented encoding; supported encoding is UTF-8" in text
    assert "version before: 4, after all six rejections: 4" in text
    assert 'named shadows: ["firmware", "telemetry"]' in text
    assert "re-created an hour later at version 5" in text
    assert "target_c   concurrent_modification: theirs written later (160)" in text
    assert 'firmware   business_rule_violation: "1.3.0" is a downgrade from "1.4.2"' in text
    assert 'merged: {"target_c": 23, "mode": "eco", "fan": "low", "firmware": "1.4.2"}' in text
    assert "mode       owner_wins: device owns reported" in text
    assert "target_c   rule:range:target_c: 35 is greater than the maximum 30" in text
    assert 'reported now: {"mode": "eco", "temp_c": 21.5, "target_c": 21}' in text
    assert "device and cloud still differ on: nothing" in text
