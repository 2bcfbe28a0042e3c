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
    assert "decision: review (1 conflict(s) held for manual review)" in text
    assert (
        'review interval_s: cloud 30 vs device 120; approve -> {"desired": {"interval_s": 120}}'
        in text
    )
    assert 'update (desired follows the device\'s own change): {"desired": {"mode": "eco"}}' in text
    assert "emit: Manual Review Required; ConflictDetected=1" in text
    assert "thermostat-43: offline (never reported;" in text
    assert "2 devices: 0 healthy, 0 warning, 1 conflict, 1 offline" in text
    assert "audit log: 2 records, chain intact: True" in text
    assert "status: rolled_back from version 9, running {'db': 'pg16', 'web': 'w2'}" in text
    assert '"rule": "reconcile:web", "reason": "failed 3 times: w3 exited with' in text
