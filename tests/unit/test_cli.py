"""The ``shadowsync`` command line: every command, its output, its errors and its exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, cast

import pytest

from shadowsync import apply_update
from shadowsync.audit import AuditLog
from shadowsync.cli import main

# A GetThingShadow body whose desired and reported differ on two leaves.
DOCUMENT: dict[str, Any] = {
    "state": {
        "desired": {"color": "red", "lights": {"r": 255, "g": 0}},
        "reported": {"color": "blue", "lights": {"r": 255, "g": 10}},
        "delta": {"color": "red", "lights": {"g": 0}},
    },
    "metadata": {
        "desired": {"color": {"timestamp": 10}, "lights": {"r": {"timestamp": 10}}},
        "reported": {"color": {"timestamp": 12}},
    },
    "version": 3,
    "timestamp": 12,
}
DOCUMENT_BYTES = len(
    json.dumps(
        {"desired": DOCUMENT["state"]["desired"], "reported": DOCUMENT["state"]["reported"]},
        separators=(",", ":"),
    )
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return str(path)


def pretty(value: object) -> str:
    return json.dumps(value, indent=2) + "\n"


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def only_error(err: str) -> str:
    """The single ``shadowsync: error:`` line of stderr (after argparse's usage line, if any)."""
    lines = err.splitlines()
    assert lines[-1].startswith("shadowsync: error: "), err
    assert "Traceback" not in err
    return lines[-1].removeprefix("shadowsync: error: ")


# --------------------------------------------------------------------------------------------
# delta
# --------------------------------------------------------------------------------------------


def test_delta_of_a_document_prints_the_delta_object(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "delta", write(tmp_path, "doc.json", DOCUMENT))
    assert (code, err) == (0, "")
    assert out == '{\n  "color": "red",\n  "lights": {\n    "g": 0\n  }\n}\n'


def test_delta_in_sync_prints_null(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = {"state": {"desired": {"on": True}, "reported": {"on": True, "rssi": -60}}}
    assert run(capsys, "delta", write(tmp_path, "doc.json", body)) == (0, "null\n", "")


def test_delta_of_two_section_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    desired = write(tmp_path, "d.json", {"lights": {"r": 255, "g": 0}, "mode": "eco"})
    reported = write(tmp_path, "r.json", {"lights": {"r": 255, "g": 10}, "mode": "eco"})
    code, out, _ = run(capsys, "delta", "--desired", desired, "--reported", reported)
    assert (code, out) == (0, pretty({"lights": {"g": 0}}))


def test_delta_with_only_desired_counts_reported_as_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    desired = write(tmp_path, "d.json", {"on": True})
    assert run(capsys, "delta", "--desired", desired) == (0, pretty({"on": True}), "")


def test_delta_as_json_patch_turns_reported_into_desired(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "delta", write(tmp_path, "doc.json", DOCUMENT), "--format", "json-patch"
    )
    assert code == 0
    assert json.loads(out) == [
        {"op": "replace", "path": "/color", "value": "red"},
        {"op": "replace", "path": "/lights/g", "value": 0},
    ]


def test_delta_as_merge_patch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    desired = write(tmp_path, "d.json", {"color": "red", "lights": {"g": 0}, "list": [1, 2]})
    reported = write(tmp_path, "r.json", {"color": "blue", "lights": {"g": 10}, "list": [1]})
    code, out, _ = run(
        capsys, "delta", "--desired", desired, "--reported", reported, "--format", "merge-patch"
    )
    assert (code, out) == (0, pretty({"color": "red", "lights": {"g": 0}, "list": [1, 2]}))


def test_delta_patch_when_in_sync_is_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    same = write(tmp_path, "s.json", {"on": True})
    args = ("delta", "--desired", same, "--reported", same, "--format")
    assert run(capsys, *args, "json-patch") == (0, "[]\n", "")
    assert run(capsys, *args, "merge-patch") == (0, "{}\n", "")


def test_delta_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, json.dumps(DOCUMENT).encode())
    assert run(capsys, "delta", "-") == (0, pretty({"color": "red", "lights": {"g": 0}}), "")


def test_delta_error_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    code, out, err = run(capsys, "delta", missing)
    assert (code, out) == (2, "")
    assert err == f"shadowsync: error: cannot read {missing}: No such file or directory\n"


def test_delta_error_invalid_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "doc.json", '{"state": ')
    code, out, err = run(capsys, "delta", path)
    assert (code, out) == (2, "")
    assert only_error(err) == f"{path}: not valid JSON: Expecting value: line 1 column 11 (char 10)"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\xff{}", "not valid JSON: payload is not UTF-8: invalid start byte"),
        (b'{"state": {"desired": {"x": NaN}}}', "not valid JSON: NaN is not valid JSON"),
    ],
)
def test_delta_error_bytes_that_are_not_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, problem: str
) -> None:
    path = write(tmp_path, "doc.json", content)
    code, _, err = run(capsys, "delta", path)
    assert (code, only_error(err)) == (2, f"{path}: {problem}")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([1, 2], "a shadow document must be a JSON object, got list"),
        ({"state": {"desired": 5}}, "Invalid JSON (desired is not an object)"),
        ({"state": {}, "version": "3"}, "version must be a non-negative integer, got '3'"),
        ({"state": {"wanted": {}}}, "state contains unknown nodes: ['wanted']"),
    ],
)
def test_delta_error_not_a_shadow_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, body: object, problem: str
) -> None:
    path = write(tmp_path, "doc.json", body)
    code, out, err = run(capsys, "delta", path)
    assert (code, out, err) == (2, "", f"shadowsync: error: {path}: {problem}\n")


def test_delta_error_section_file_not_an_object(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    desired = write(tmp_path, "d.json", ["on"])
    code, _, err = run(capsys, "delta", "--desired", desired)
    assert (code, only_error(err)) == (2, f"{desired}: desired must be a JSON object, got an array")


def test_delta_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "doc.json", DOCUMENT)
    code, _, err = run(capsys, "delta")
    assert (code, only_error(err)) == (
        2,
        "give a shadow document FILE, or --desired and --reported",
    )
    code, _, err = run(capsys, "delta", path, "--desired", path)
    assert (code, only_error(err)) == (2, "give either FILE or --desired/--reported, not both")
    code, _, err = run(capsys, "delta", path, "--format", "yaml")
    assert code == 2
    assert "argument --format: invalid choice: 'yaml'" in only_error(err)


# --------------------------------------------------------------------------------------------
# merge
# --------------------------------------------------------------------------------------------


@pytest.fixture
def sections(tmp_path: Path) -> tuple[str, str, str]:
    return (
        write(tmp_path, "base.json", {"mode": "heat", "target_c": 20}),
        write(tmp_path, "ours.json", {"mode": "eco", "target_c": 20}),
        write(tmp_path, "theirs.json", {"mode": "cool", "target_c": 22}),
    )


def conflict(strategy: str, reason: str, review_id: str | None = None) -> dict[str, Any]:
    return {
        "path": "mode",
        "pointer": "/mode",
        "section": "desired",
        "kind": "concurrent_modification",
        "severity": "medium",
        "base": "heat",
        "ours": "eco",
        "theirs": "cool",
        "strategy": strategy,
        "winner": "ours",
        "value": "eco",
        "reason": reason,
        "reviewId": review_id,
    }


def test_merge_prints_merged_conflicts_reviews_escalated(
    capsys: pytest.CaptureFixture[str], sections: tuple[str, str, str]
) -> None:
    code, out, err = run(capsys, "merge", *sections)
    assert (code, err) == (0, "")
    assert out == pretty(
        {
            "merged": {"mode": "eco", "target_c": 22},
            "conflicts": [
                conflict("last_writer_wins", "no write stamps: larger value wins (deterministic)")
            ],
            "reviews": [],
            "escalated": False,
        }
    )


def test_merge_without_conflicts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = write(tmp_path, "b.json", {"a": 1, "b": 1})
    ours = write(tmp_path, "o.json", {"a": 2, "b": 1})
    theirs = write(tmp_path, "t.json", {"a": 1, "b": 3})
    expected = {"merged": {"a": 2, "b": 3}, "conflicts": [], "reviews": [], "escalated": False}
    assert run(capsys, "merge", base, ours, theirs) == (0, pretty(expected), "")


def test_merge_review_and_fail_on_review(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sections: tuple[str, str, str]
) -> None:
    policy = write(tmp_path, "policy.json", {"strategy": "manual_review"})
    code, out, _ = run(capsys, "merge", *sections, "--policy", policy)
    assert code == 0
    result = json.loads(out)
    review_id = result["reviews"][0]["id"]
    assert result == {
        "merged": {"mode": "eco", "target_c": 22},
        "conflicts": [conflict("manual_review", "held for manual review", review_id)],
        "reviews": [
            {
                "id": review_id,
                "path": "mode",
                "pointer": "/mode",
                "section": "desired",
                "current": "eco",
                "proposed": "cool",
                "base": "heat",
                "reason": "held for manual review",
            }
        ],
        "escalated": False,
    }
    code, again, _ = run(capsys, "merge", *sections, "--policy", policy, "--fail-on-review")
    assert (code, again) == (1, out)
    # Without anything held for review, --fail-on-review passes.
    assert run(capsys, "merge", *sections, "--fail-on-review")[0] == 0


def test_merge_escalation_by_threshold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sections: tuple[str, str, str]
) -> None:
    policy = write(tmp_path, "policy.json", {"auto_resolve_threshold": 0})
    code, out, _ = run(capsys, "merge", *sections, "--policy", policy, "--fail-on-review")
    result = json.loads(out)
    assert (code, result["escalated"], len(result["reviews"])) == (1, True, 1)


def test_merge_policy_per_shadow_thing_and_section(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sections: tuple[str, str, str]
) -> None:
    policy = write(
        tmp_path,
        "policy.json",
        {
            "strategy": "last_writer_wins",
            "shadows": {"configuration": "manual_review"},
            "paths": [{"path": "mode", "section": "reported", "thing": "t-1", "strategy": "lww"}],
        },
    )
    out = run(capsys, "merge", *sections, "--policy", policy, "--shadow", "configuration")[1]
    assert json.loads(out)["conflicts"][0]["strategy"] == "manual_review"
    args = ("--shadow", "configuration", "--section", "reported", "--thing", "t-1")
    out = run(capsys, "merge", *sections, "--policy", policy, *args)[1]
    record = json.loads(out)["conflicts"][0]
    assert (record["strategy"], record["section"]) == ("last_writer_wins", "reported")


def test_merge_with_business_rules(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sections: tuple[str, str, str]
) -> None:
    rules = write(
        tmp_path, "rules.json", {"rules": [{"type": "range", "path": "target_c", "max": 21}]}
    )
    code, out, _ = run(capsys, "merge", *sections, "--rules", rules)
    result = json.loads(out)
    assert code == 0
    assert result["merged"] == {"mode": "eco", "target_c": 20}
    assert result["conflicts"][1] == {
        "path": "target_c",
        "pointer": "/target_c",
        "section": "desired",
        "kind": "business_rule_violation",
        "severity": "high",
        "base": 20,
        "ours": 20,
        "theirs": 22,
        "strategy": "rule:range:target_c",
        "winner": "ours",
        "value": 20,
        "reason": "22 is greater than the maximum 21",
        "reviewId": None,
    }


def test_merge_reads_one_section_from_standard_input(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sections: tuple[str, str, str],
) -> None:
    feed_stdin(monkeypatch, b'{"mode": "heat", "target_c": 20}')
    code, out, _ = run(capsys, "merge", "-", sections[1], sections[2])
    assert (code, json.loads(out)["merged"]) == (0, {"mode": "eco", "target_c": 22})


def test_merge_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sections: tuple[str, str, str],
) -> None:
    base, ours, theirs = sections
    bad_policy = write(tmp_path, "p.json", {"strategy": "coin_flip"})
    code, out, err = run(capsys, "merge", *sections, "--policy", bad_policy)
    assert (code, out) == (2, "")
    assert only_error(err) == (
        f"{bad_policy}: unknown strategy 'coin_flip'; expected one of last_writer_wins, "
        "field_merge, priority, owner_wins, manual_review"
    )
    bad_rules = write(tmp_path, "r.json", {"rule": []})
    code, _, err = run(capsys, "merge", *sections, "--rules", bad_rules)
    assert (code, only_error(err)) == (2, f"{bad_rules}: rule: unknown key (allowed: rules)")
    not_json = write(tmp_path, "n.json", "strategy: lww")
    code, _, err = run(capsys, "merge", *sections, "--policy", not_json)
    assert code == 2
    assert only_error(err).startswith(f"{not_json}: not valid JSON: ")
    array = write(tmp_path, "a.json", [])
    code, _, err = run(capsys, "merge", array, ours, theirs)
    assert (code, only_error(err)) == (2, f"{array}: BASE must be a JSON object, got an array")
    nulls = write(tmp_path, "nulls.json", {"mode": None})
    code, _, err = run(capsys, "merge", base, nulls, theirs)
    # Checked before merging, so that the message names the file, not the role.
    assert (code, only_error(err)) == (
        2,
        f"{nulls}: Invalid JSON (null is not allowed here at desired.mode)",
    )
    code, _, err = run(capsys, "merge", base, ours, str(tmp_path / "gone.json"))
    assert code == 2
    assert only_error(err).endswith("gone.json: No such file or directory")
    feed_stdin(monkeypatch, b"{}")
    code, _, err = run(capsys, "merge", "-", "-", theirs)
    assert (code, only_error(err)) == (2, "only one file argument can be '-' (standard input)")
    code, _, err = run(capsys, "merge", base, ours)
    assert code == 2
    assert only_error(err) == "the following arguments are required: THEIRS"


# --------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------


def test_validate_document(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "validate", write(tmp_path, "doc.json", DOCUMENT))
    assert (code, err) == (0, "")
    assert out == (
        f'{{\n  "valid": true,\n  "bytes": {DOCUMENT_BYTES},\n  "limit": 8192,\n  "depth": 2\n}}\n'
    )


def test_validate_empty_document(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "doc.json", {"state": {}, "version": 1})
    expected = {"valid": True, "bytes": 2, "limit": 8192, "depth": 0}
    assert run(capsys, "validate", path) == (0, pretty(expected), "")


def test_validate_over_limit_document_is_413(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "doc.json", {"state": {"reported": {"log": "x" * 9000}}})
    code, out, err = run(capsys, "validate", path)
    assert (code, err) == (1, "")
    assert out == pretty(
        {
            "valid": False,
            "code": 413,
            "message": "The payload exceeds the maximum size allowed",
            "detail": "the merged desired + reported state would be 9023 bytes; the limit is 8192",
        }
    )
    # A larger limit (as a local shadow service may have) accepts it.
    code, out, _ = run(capsys, "validate", path, "--max-bytes", "10000")
    assert (code, json.loads(out)) == (
        0,
        {"valid": True, "bytes": 9023, "limit": 10000, "depth": 1},
    )


def test_validate_document_too_deep_is_400(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "doc.json", DOCUMENT)
    code, out, _ = run(capsys, "validate", path, "--max-depth", "1")
    assert code == 1
    assert out == pretty(
        {
            "valid": False,
            "code": 400,
            "message": "JSON contains too many levels of nesting; maximum is 1",
            "detail": "level 2 is too deep at desired.lights",
        }
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"state": {"desired": {"on": None}}},
            "Invalid JSON (null is not allowed here at desired.on)",
        ),
        ({"state": {}, "version": -1}, "version must be a non-negative integer, got -1"),
        ({"state": {"reported": {"on": 1}}, "metadata": []}, "metadata must be an object"),
        ('"shadow"', "a shadow document must be a JSON object, got str"),
    ],
)
def test_validate_malformed_document_is_400(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, body: object, message: str
) -> None:
    code, out, _ = run(capsys, "validate", write(tmp_path, "doc.json", body))
    assert (code, out) == (1, pretty({"valid": False, "code": 400, "message": message}))


def test_validate_document_state_refused_by_the_service(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "doc.json", {"state": {"desired": [1]}})
    code, out, _ = run(capsys, "validate", path)
    assert (code, out) == (
        1,
        pretty(
            {
                "valid": False,
                "code": 400,
                "message": "Desired node must be an object",
                "detail": "desired is an array",
            }
        ),
    )


def test_validate_update_on_a_new_shadow(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "u.json", {"state": {"desired": {"color": "red", "a": {"b": [1]}}}})
    size = len('{"desired":{"color":"red","a":{"b":[1]}}}')
    expected = {"valid": True, "bytes": size, "limit": 8192, "depth": 3}
    assert run(capsys, "validate", "--kind", "update", path) == (0, pretty(expected), "")


def test_validate_update_on_a_base_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = write(tmp_path, "doc.json", DOCUMENT)
    # Deleting desired.color (null) and adding reported.on: measured on the merged document.
    update = write(
        tmp_path, "u.json", {"state": {"desired": {"color": None}, "reported": {"on": True}}}
    )
    code, out, _ = run(capsys, "validate", "--kind", "update", "--base", base, update)
    assert (code, json.loads(out)) == (
        0,
        {
            "valid": True,
            "bytes": DOCUMENT_BYTES - len('"color":"red",') + len(',"on":true'),
            "limit": 8192,
            "depth": 2,
        },
    )
    stale = write(tmp_path, "stale.json", {"state": {"desired": {"x": 1}}, "version": 2})
    code, out, _ = run(capsys, "validate", "--kind", "update", "--base", base, stale)
    assert (code, out) == (
        1,
        pretty(
            {
                "valid": False,
                "code": 409,
                "message": "Version conflict",
                "detail": "request version 2, shadow version 3",
            }
        ),
    )


def test_validate_update_rejections(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    too_big = write(tmp_path, "big.json", {"state": {"reported": {"log": "x" * 100}}})
    code, out, _ = run(capsys, "validate", "--kind", "update", "--max-bytes", "64", too_big)
    assert (code, json.loads(out)) == (
        1,
        {
            "valid": False,
            "code": 413,
            "message": "The payload exceeds the maximum size allowed",
            "detail": "the merged desired + reported state would be 123 bytes; the limit is 64",
        },
    )
    null_in_array = write(tmp_path, "n.json", {"state": {"desired": {"x": [1, None]}}})
    code, out, _ = run(capsys, "validate", "--kind", "update", null_in_array)
    assert (code, json.loads(out)["code"], json.loads(out)["message"]) == (
        1,
        400,
        "Array values must not be null",
    )
    not_an_object = write(tmp_path, "a.json", [])
    code, out, _ = run(capsys, "validate", "--kind", "update", not_an_object)
    assert (code, json.loads(out)) == (
        1,
        {
            "valid": False,
            "code": 400,
            "message": "Invalid JSON",
            "detail": "the request must be a JSON object, got an array",
        },
    )


def test_validate_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b'{"state": {"desired": {"on": true}}}')
    expected = {"valid": True, "bytes": 23, "limit": 8192, "depth": 1}
    assert run(capsys, "validate", "--kind", "update", "-") == (0, pretty(expected), "")


def test_validate_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = write(tmp_path, "doc.json", DOCUMENT)
    code, out, err = run(capsys, "validate", doc, "--base", doc)
    assert (code, out, only_error(err)) == (2, "", "--base goes with --kind update")
    code, _, err = run(capsys, "validate", doc, "--max-bytes", "40000")
    assert (code, only_error(err)) == (
        2,
        "invalid limits: max_document_bytes must be an int from 1 to 30720, got 40000",
    )
    code, _, err = run(capsys, "validate", doc, "--max-depth", "deep")
    assert (code, only_error(err)) == (2, "argument --max-depth: invalid int value: 'deep'")
    not_json = write(tmp_path, "u.json", "{'state': {}}")
    code, out, err = run(capsys, "validate", "--kind", "update", not_json)
    assert (code, out) == (2, "")
    assert only_error(err).startswith(f"{not_json}: not valid JSON: Expecting property name")
    code, _, err = run(capsys, "validate", str(tmp_path / "gone.json"))
    assert (code, only_error(err)) == (
        2,
        f"cannot read {tmp_path / 'gone.json'}: No such file or directory",
    )
    # The base document is input, not the thing judged: a bad one is exit 2.
    bad_base = write(tmp_path, "base.json", {"state": {"desired": {"on": None}}})
    code, _, err = run(capsys, "validate", "--kind", "update", "--base", bad_base, doc)
    assert (code, only_error(err)) == (
        2,
        f"{bad_base}: Invalid JSON (null is not allowed here at desired.on)",
    )


# --------------------------------------------------------------------------------------------
# verify-log
# --------------------------------------------------------------------------------------------


def audit_log(records: int = 2) -> AuditLog:
    log = AuditLog()
    document = None
    for index in range(records):
        section = "desired" if index % 2 == 0 else "reported"
        result = apply_update(
            document, {"state": {section: {"level": index}}}, timestamp=100 + index
        )
        log.append(
            "lamp",
            None,
            previous_state=document,
            new_state=result.document,
            version=result.document.version,
            timestamp=100 + index,
            change_type="update",
            decision="accept",
            reason="no conflict",
        )
        document = result.document
    return log


def test_verify_log_ok(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = audit_log(3)
    path = write(tmp_path, "log.jsonl", log.to_jsonl())
    assert run(capsys, "verify-log", path) == (0, f"OK: 3 records, head {log.head}\n", "")
    single = audit_log(1)
    path = write(tmp_path, "one.jsonl", single.to_jsonl())
    assert run(capsys, "verify-log", path) == (0, f"OK: 1 record, head {single.head}\n", "")
    path = write(tmp_path, "empty.jsonl", "")
    assert run(capsys, "verify-log", path) == (0, "OK: 0 records (empty log)\n", "")


def test_verify_log_ok_as_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = audit_log(2)
    path = write(tmp_path, "log.jsonl", log.to_jsonl())
    code, out, _ = run(capsys, "verify-log", path, "--json")
    assert (code, out) == (
        0,
        pretty(
            {
                "ok": True,
                "index": None,
                "reason": None,
                "detail": "2 records verified",
                "head": log.head,
            }
        ),
    )


def test_verify_log_tampered_names_the_bad_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = audit_log(3).to_jsonl().splitlines(keepends=True)
    lines[1] = lines[1].replace('"reason":"no conflict"', '"reason":"approved by ops"')
    tampered = "".join(lines)
    path = write(tmp_path, "log.jsonl", tampered)
    expected = AuditLog.from_jsonl(tampered).verify()
    code, out, err = run(capsys, "verify-log", path)
    assert (code, err) == (1, "")
    assert out == f"FAILED at record 1: checksum mismatch: {expected.detail}\n"
    assert out.startswith(
        "FAILED at record 1: checksum mismatch: record 1 (thing 'lamp', classic shadow, version 2)"
    )
    code, out, _ = run(capsys, "verify-log", path, "--json")
    assert (code, json.loads(out)) == (
        1,
        {
            "ok": False,
            "index": 1,
            "reason": "checksum mismatch",
            "detail": expected.detail,
            "head": expected.head,
        },
    )


def test_verify_log_removed_record_breaks_the_chain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = audit_log(3).to_jsonl().splitlines(keepends=True)
    path = write(tmp_path, "log.jsonl", lines[0] + lines[2])
    code, out, _ = run(capsys, "verify-log", path)
    assert code == 1
    assert out.startswith("FAILED at record 1: chain broken: record 1 (thing 'lamp'")


def test_verify_log_expected_head_detects_truncation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = audit_log(3)
    lines = log.to_jsonl().splitlines(keepends=True)
    path = write(tmp_path, "log.jsonl", "".join(lines[:2]))
    code, out, _ = run(capsys, "verify-log", path, "--expected-head", log.head)
    assert code == 1
    assert out.startswith("FAILED at record 2: truncated: the chain is intact but its 2 records")
    full = write(tmp_path, "full.jsonl", log.to_jsonl())
    assert run(capsys, "verify-log", full, "--expected-head", log.head)[0] == 0


def test_verify_log_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = audit_log(2).to_jsonl()
    path = write(tmp_path, "log.jsonl", text + "not json\n")
    code, out, err = run(capsys, "verify-log", path)
    assert (code, out) == (2, "")
    assert only_error(err).startswith(f"{path}: line 3: ")
    path = write(tmp_path, "shape.jsonl", '{"version": 1}\n')
    code, _, err = run(capsys, "verify-log", path)
    assert code == 2
    assert only_error(err).startswith(f"{path}: line 1: ")
    path = write(tmp_path, "bin.jsonl", b"\xff\xfe")
    code, _, err = run(capsys, "verify-log", path)
    assert (code, only_error(err)) == (
        2,
        f"{path}: the audit log is not UTF-8 text (invalid start byte at byte 0)",
    )
    code, _, err = run(capsys, "verify-log", str(tmp_path))
    assert code == 2
    assert only_error(err).startswith(f"cannot read {tmp_path}: ")


# --------------------------------------------------------------------------------------------
# Every file argument passes the JSON boundary
# --------------------------------------------------------------------------------------------

# Content no file argument may hold, and what the error says about it.
UNUSABLE: dict[str, tuple[bytes, str]] = {
    "1e400": (b'{"a": 1e400}', "not valid JSON: a number beyond a float's range (inf) at a"),
    "-1e400 in an array": (b'{"a": [1, -1e400]}', "a number beyond a float's range (-inf) at a[1]"),
    "NaN": (b'{"a": NaN}', "not valid JSON: NaN is not valid JSON"),
    "Infinity": (b'{"a": Infinity}', "not valid JSON: Infinity is not valid JSON"),
    "-Infinity": (b'{"a": [-Infinity]}', "not valid JSON: -Infinity is not valid JSON"),
    "lone surrogate": (b'{"a": "x\\ud800"}', "a string holds a lone UTF-16 surrogate"),
    "lone surrogate key": (b'{"a": {"\\udc00": 1}}', "a string holds a lone UTF-16 surrogate"),
    "invalid UTF-8": (b'{"a": "caf\xe9"}', "not UTF-8"),
    "65 levels": (
        b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}",
        "not valid JSON: more than 64 levels of nesting at a[0][0]",
    ),
    "100000 levels": (b"[" * 100_000 + b"]" * 100_000, "nests too deeply to parse"),
    "malformed": (b'{"a": ', "not valid JSON: Expecting value"),
}

# Every way a command reads a file, with BAD standing for the file under test.
READERS: dict[str, list[str]] = {
    "delta FILE": ["delta", "BAD"],
    "delta --desired": ["delta", "--desired", "BAD"],
    "delta --reported": ["delta", "--desired", "SECTION", "--reported", "BAD"],
    "merge BASE": ["merge", "BAD", "SECTION", "SECTION"],
    "merge OURS": ["merge", "SECTION", "BAD", "SECTION"],
    "merge THEIRS": ["merge", "SECTION", "SECTION", "BAD"],
    "merge --policy": ["merge", "SECTION", "SECTION", "SECTION", "--policy", "BAD"],
    "merge --rules": ["merge", "SECTION", "SECTION", "SECTION", "--rules", "BAD"],
    "validate document": ["validate", "BAD"],
    "validate update": ["validate", "--kind", "update", "BAD"],
    "validate --base": ["validate", "--kind", "update", "--base", "BAD", "DOC"],
    "verify-log": ["verify-log", "BAD"],
    "health FLEET": ["health", "BAD", "--now", "1700000100"],
    "health --history": ["health", "FLEET", "--history", "BAD", "--now", "1700000100"],
}


def argv(tmp_path: Path, reader: str, bad: str) -> list[str]:
    good = {
        "SECTION": write(tmp_path, "section.json", {"mode": "eco"}),
        "DOC": write(tmp_path, "doc.json", DOCUMENT),
        "FLEET": write(tmp_path, "fleet.json", _fleet()),
        "BAD": bad,
    }
    return [good.get(arg, arg) for arg in READERS[reader]]


@pytest.mark.parametrize("content", list(UNUSABLE))
@pytest.mark.parametrize("reader", list(READERS))
def test_every_file_argument_refuses_what_the_library_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, reader: str, content: str
) -> None:
    data, problem = UNUSABLE[content]
    bad = write(tmp_path, "bad.jsonl" if "log" in reader or "history" in reader else "bad", data)
    code, out, err = run(capsys, *argv(tmp_path, reader, bad))
    assert (code, out) == (2, "")
    message = only_error(err)
    assert message.startswith(f"{bad}: "), message
    assert problem in message


@pytest.mark.parametrize("reader", list(READERS))
def test_every_file_argument_names_a_missing_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, reader: str
) -> None:
    missing = str(tmp_path / "missing.json")
    code, out, err = run(capsys, *argv(tmp_path, reader, missing))
    assert (code, out) == (2, "")
    assert only_error(err) == f"cannot read {missing}: No such file or directory"


@pytest.mark.parametrize("reader", ["delta --desired", "merge OURS", "health --history"])
def test_standard_input_passes_the_same_boundary(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    reader: str,
) -> None:
    feed_stdin(monkeypatch, b'{"a": 1e400}')
    code, out, err = run(capsys, *argv(tmp_path, reader, "-"))
    assert (code, out) == (2, "")
    message = only_error(err)
    assert message.startswith("<stdin>: ")
    assert message.endswith("not valid JSON: a number beyond a float's range (inf) at a")


def test_an_audit_log_line_names_its_number(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "log.jsonl", audit_log(2).to_jsonl() + '\n{"reason": "\\ud800"}\n')
    code, out, err = run(capsys, "verify-log", path)
    assert (code, out) == (2, "")
    assert only_error(err) == (
        f"{path}: line 4: not valid JSON: a string holds a lone UTF-16 surrogate, which is not "
        "UTF-8 at reason"
    )


def nested(levels: int) -> dict[str, Any]:
    """An object nesting ``levels`` levels: {"k": {"k": ... 1}}."""
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return cast("dict[str, Any]", value)


def test_files_as_deep_as_the_limits_allow_are_used(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A section may nest 64 levels in a merge (the file's outermost object is level 1).
    deep = nested(64)
    section = write(tmp_path, "deep.json", deep)
    code, out, _ = run(capsys, "merge", section, section, section)
    assert (code, json.loads(out)["merged"]) == (0, deep)
    too_deep = write(tmp_path, "deeper.json", {"k": deep})
    code, out, err = run(capsys, "merge", section, section, too_deep)
    assert (code, out) == (2, "")
    assert only_error(err).startswith(
        f"{too_deep}: not valid JSON: more than 64 levels of nesting at k.k."
    )
    # A document beyond the depth limit it is checked against is judged, not refused as input.
    document = write(tmp_path, "doc.json", {"state": {"reported": nested(40)}})
    code, out, _ = run(capsys, "validate", document, "--max-depth", "32")
    assert (code, json.loads(out)["code"]) == (1, 400)


def test_delta_sections_are_held_to_what_a_document_holds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The same rules as for the sections of a FILE: no null, at most 32 levels.
    nulls = write(tmp_path, "d.json", {"mode": None})
    code, out, err = run(capsys, "delta", "--desired", nulls)
    assert (code, out) == (2, "")
    assert only_error(err) == f"{nulls}: Invalid JSON (null is not allowed here at desired.mode)"
    deep_path = write(tmp_path, "r.json", nested(33))
    code, out, err = run(capsys, "delta", "--reported", deep_path)
    assert (code, out) == (2, "")
    assert only_error(err).startswith(
        f"{deep_path}: JSON contains too many levels of nesting; maximum is 32 (level 33"
    )


# --------------------------------------------------------------------------------------------
# The parser, the entry points, the imports
# --------------------------------------------------------------------------------------------


def test_usage_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert (code, out) == (2, "")
    assert err.startswith("usage: shadowsync ")
    assert only_error(err) == "the following arguments are required: COMMAND"
    code, _, err = run(capsys, "reboot")
    assert code == 2
    assert only_error(err).startswith("argument COMMAND: invalid choice: 'reboot'")
    code, _, err = run(capsys, "health")
    assert code == 2
    assert only_error(err) == "the following arguments are required: FLEET.json"


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("delta", "merge", "validate", "verify-log"):
        assert command in out
    assert run(capsys, "--version") == (0, "shadowsync 0.1.0\n", "")
    code, out, _ = run(capsys, "merge", "--help")
    assert code == 0
    assert out.startswith("usage: shadowsync merge ")


def test_python_dash_m_shadowsync_runs_the_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "doc.json", DOCUMENT)
    completed = subprocess.run(
        [sys.executable, "-m", "shadowsync", "delta", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == pretty({"color": "red", "lights": {"g": 0}})
    completed = subprocess.run(
        [sys.executable, "-m", "shadowsync", "delta", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("shadowsync: error: cannot read ")


def test_console_script_is_installed() -> None:
    script = Path(sysconfig.get_path("scripts")) / "shadowsync"
    assert script.is_file(), f"{script} is missing; reinstall with pip install -e '.[dev]'"
    completed = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (completed.returncode, completed.stdout) == (0, "shadowsync 0.1.0\n")


def test_the_cli_imports_no_adapter_dependency() -> None:
    code = (
        "import json, sys\n"
        "import shadowsync.cli, shadowsync.audit, shadowsync.rules\n"
        "from shadowsync import ResolutionPolicy, merge\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout)
    assert "shadowsync.cli" in loaded
    forbidden = ("boto3", "botocore", "paho", "deepdiff", "moto")
    assert [name for name in loaded if name.split(".")[0] in forbidden] == []


# --- health ---


def _fleet() -> dict[str, Any]:
    fresh = apply_update(None, {"state": {"reported": {"rate": 30}}}, timestamp=1700000000)
    stale = apply_update(
        None,
        {"state": {"desired": {"rate": 60}, "reported": {"rate": 30}}},
        timestamp=1699990000,
    )
    return {
        "pump-1": {"$default": fresh.document.to_dict(), "configuration": fresh.document.to_dict()},
        "pump-2": {"$default": stale.document.to_dict()},
        "pump-3": {},
    }


def test_health_prints_the_devices_that_are_not_healthy_and_totals(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = write(tmp_path, "fleet.json", _fleet())
    code, out, err = run(capsys, "health", fleet, "--now", "1700000100")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "pump-2: offline (no report for 10100 s; 1 desired value(s) in $default pending for "
        "10100 s; shadow configuration not found)",
        "pump-3: offline (never reported; shadow $default not found; shadow configuration not "
        "found)",
        "3 devices: 1 healthy, 0 warning, 0 conflict, 2 offline",
    ]


def test_health_json_thresholds_and_fail_unhealthy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = write(tmp_path, "fleet.json", _fleet())
    code, out, _ = run(
        capsys,
        "health",
        fleet,
        "--now",
        "1700000100",
        "--shadows",
        "$default",
        "--offline-after",
        "20000",
        "--json",
        "--fail-unhealthy",
    )
    body = json.loads(out)
    assert code == 1
    assert [(d["thingName"], d["status"]) for d in body["deviceHealth"]] == [
        ("pump-1", "healthy"),
        ("pump-2", "warning"),
        ("pump-3", "offline"),
    ]
    assert body["overallMetrics"] == {
        "totalDevices": 3,
        "healthyDevices": 1,
        "warningDevices": 1,
        "devicesWithConflicts": 0,
        "offlineDevices": 1,
    }


def test_health_counts_conflicts_from_the_audit_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = AuditLog()
    log.append(
        "pump-1",
        None,
        previous_state=None,
        new_state={"desired": {"rate": 30}},
        version=1,
        timestamp=1700000050,
        change_type="manual_review",
        decision="review",
        reason="held",
    )
    fleet = write(tmp_path, "fleet.json", {"pump-1": _fleet()["pump-1"]})
    history = write(tmp_path, "log.jsonl", log.to_jsonl())
    code, out, _ = run(capsys, "health", fleet, "--history", history, "--now", "1700000100")
    assert code == 0
    assert out.splitlines()[0] == (
        "pump-1: conflict (1 conflict(s) in the last 86400 s, 1 held for review)"
    )


def test_health_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    array = write(tmp_path, "array.json", [1])
    assert run(capsys, "health", array)[0] == 2
    bad_shadow = write(tmp_path, "bad.json", {"pump-1": {"$default": {"state": 5}}})
    code, _, err = run(capsys, "health", bad_shadow, "--now", "1")
    assert code == 2
    assert err == f"shadowsync: error: {bad_shadow}: the current shadow: state must be an object\n"
    not_map = write(tmp_path, "notmap.json", {"pump-1": [1]})
    code, _, err = run(capsys, "health", not_map)
    assert code == 2
    assert "'pump-1' must map shadow names to GET bodies, got an array" in err
    fleet = write(tmp_path, "fleet.json", _fleet())
    code, _, err = run(capsys, "health", fleet, "--offline-after", "0")
    assert code == 2
    assert "offline_after_seconds must be a positive number of seconds" in err
    broken = write(tmp_path, "log.jsonl", "{not json\n")
    code, _, err = run(capsys, "health", fleet, "--history", broken)
    assert code == 2
    assert err.startswith("shadowsync: error: ")
    assert "log.jsonl" in err
