"""Laws of apply_update: the AWS merge, versions, metadata timestamps, limits and rejections."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shadowsync import (
    JSONObject,
    ShadowDocument,
    ShadowLimits,
    UpdateRequest,
    apply_update,
    errors,
)
from shadowsync._document import known_size
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.strategies import (
    NESTING_TEXT,
    ROOMY_LIMITS,
    Path,
    built_documents,
    capped_examples,
    client_tokens,
    container_depth,
    contains_null,
    encoded_state_size,
    leaf_paths,
    lookup,
    metadata_timestamps,
    rejected_updates,
    related_states,
    shadow_documents,
    shadow_states,
    strict_equal,
    update_bodies,
)

small_limits = st.integers(min_value=16, max_value=1024).map(
    lambda size: ShadowLimits(max_document_bytes=size)
)


@st.composite
def documents_with_rejected_updates(
    draw: st.DrawFn,
) -> tuple[ShadowDocument | None, Any, int, str]:
    document = draw(st.one_of(st.none(), shadow_documents()))
    payload, code, message = draw(rejected_updates(document))
    return document, payload, code, message


def _later(document: ShadowDocument | None) -> int:
    return 1_700_000_000 if document is None else document.timestamp + 1


def _section_patches(body: JSONObject) -> dict[str, Any]:
    """Each section's patch: absent sections are left out; ``None`` clears the section."""
    state = body["state"]
    if state is None:
        return {"desired": None, "reported": None}
    assert isinstance(state, dict)
    return {name: state[name] for name in ("desired", "reported") if name in state}


def _reference_merge(value: Any, patch: JSONObject) -> JSONObject:
    """The AWS merge: objects merge recursively, ``null`` deletes, anything else replaces."""
    out: JSONObject = dict(value) if isinstance(value, dict) else {}
    for key, item in patch.items():
        if item is None:
            out.pop(key, None)
        elif isinstance(item, dict):
            out[key] = _reference_merge(out.get(key), item)
        else:
            out[key] = copy.deepcopy(item)
    return out


def _at(value: Any, path: Path) -> Any:
    found, item = lookup(value, path)
    assert found, f"nothing at {path} in {value!r}"
    return item


def _covered_by(patch: Any, path: Path) -> bool:
    """Whether an update patch wrote the leaf at ``path`` (rather than merging around it)."""
    node = patch
    for key in path:
        if not isinstance(node, dict):
            return True
        if key not in node:
            return False
        node = node[key]
    return True


@capped_examples(150)
@given(documents_with_rejected_updates())
def test_a_rejected_update_raises_the_aws_code_and_text(
    case: tuple[ShadowDocument | None, Any, int, str],
) -> None:
    document, payload, code, message = case
    with pytest.raises(errors.ShadowRejectedError) as caught:
        apply_update(document, payload, timestamp=_later(document))
    assert (caught.value.code, caught.value.message) == (code, message)


@capped_examples(150)
@given(documents_with_rejected_updates())
def test_a_rejected_update_leaves_the_document_and_version_unchanged(
    case: tuple[ShadowDocument | None, Any, int, str],
) -> None:
    document, payload, _, _ = case
    assume(document is not None)
    assert document is not None
    before = document.to_dict()
    with pytest.raises(errors.ShadowRejectedError):
        apply_update(document, payload, timestamp=_later(document))
    assert strict_equal(document.to_dict(), before)
    assert document.version == before["version"]


@capped_examples(150)
@given(documents_with_rejected_updates())
def test_a_rejected_update_to_the_service_leaves_the_stored_shadow_unchanged(
    case: tuple[ShadowDocument | None, Any, int, str],
) -> None:
    document, payload, _, _ = case
    service = InMemoryShadowService(clock=ManualClock(_later(document)))
    if document is not None:
        service.seed("thing-1", document, shadow_name="config")
    before = None if document is None else service.get("thing-1", "config")
    with pytest.raises(errors.ShadowRejectedError):
        service.update("thing-1", payload, shadow_name="config")
    assert service.document("thing-1", "config") is document
    if before is not None:
        assert strict_equal(service.get("thing-1", "config"), before)


@given(
    st.lists(
        st.one_of(
            update_bodies(versions=st.one_of(st.none(), st.integers(0, 6))),
            st.just({"state": "x"}),
        ),
        min_size=1,
        max_size=8,
    ),
    small_limits,
)
def test_each_accepted_update_adds_one_to_the_version_and_a_rejected_one_none(
    bodies: list[JSONObject], limits: ShadowLimits
) -> None:
    document: ShadowDocument | None = None
    for timestamp, body in enumerate(bodies, start=1_700_000_000):
        version = 0 if document is None else document.version
        try:
            document = apply_update(document, body, timestamp=timestamp, limits=limits).document
        except errors.ShadowRejectedError:
            assert (0 if document is None else document.version) == version
        else:
            assert document.version == version + 1


@given(st.integers(0, 2**40), update_bodies())
def test_a_new_shadow_starts_one_above_the_previous_version(
    previous_version: int, body: JSONObject
) -> None:
    result = apply_update(None, body, timestamp=1, previous_version=previous_version)
    assert result.document.version == previous_version + 1
    assert result.previous is None


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_applying_the_same_update_twice_gives_the_state_of_applying_it_once(
    document: ShadowDocument, body: JSONObject
) -> None:
    timestamp = _later(document)
    once = apply_update(document, body, timestamp=timestamp, limits=ROOMY_LIMITS).document
    twice = apply_update(once, body, timestamp=timestamp, limits=ROOMY_LIMITS).document
    assert strict_equal(twice.versioned_state()["state"], once.versioned_state()["state"])
    assert strict_equal(twice.versioned_state()["metadata"], once.versioned_state()["metadata"])
    assert twice.version == document.version + 2


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_the_stored_state_is_the_request_merged_by_the_aws_rules(
    document: ShadowDocument, body: JSONObject
) -> None:
    result = apply_update(document, body, timestamp=_later(document), limits=ROOMY_LIMITS)
    patches = _section_patches(body)
    for name in ("desired", "reported"):
        expected = document.section(name)
        if name in patches:
            patch = patches[name]
            expected = {} if patch is None else _reference_merge(expected, patch)
        assert strict_equal(result.document.section(name), expected)


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_untouched_leaves_keep_their_value_and_metadata_timestamps(
    document: ShadowDocument, body: JSONObject
) -> None:
    result = apply_update(document, body, timestamp=_later(document), limits=ROOMY_LIMITS)
    for name, patch in _section_patches(body).items():
        new, new_meta = result.document.section(name), result.document.section_metadata(name)
        for path, value in leaf_paths(new).items():
            if _covered_by(patch, path):
                continue
            assert strict_equal(value, _at(document.section(name), path))
            assert strict_equal(_at(new_meta, path), _at(document.section_metadata(name), path))


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_leaves_written_by_an_update_carry_its_timestamp(
    document: ShadowDocument, body: JSONObject
) -> None:
    timestamp = _later(document)
    result = apply_update(document, body, timestamp=timestamp, limits=ROOMY_LIMITS)
    for name, patch in _section_patches(body).items():
        new, new_meta = result.document.section(name), result.document.section_metadata(name)
        for path, value in leaf_paths(new).items():
            if _covered_by(patch, path):
                assert set(metadata_timestamps(value, _at(new_meta, path))) <= {timestamp}


@capped_examples(150)
@given(built_documents(max_updates=8))
def test_every_stored_leaf_has_a_metadata_timestamp(document: ShadowDocument) -> None:
    for name in ("desired", "reported"):
        stamps = metadata_timestamps(document.section(name), document.section_metadata(name))
        assert all(stamp <= document.timestamp for stamp in stamps)


@capped_examples(150)
@given(shadow_documents(), update_bodies(client_token_values=st.one_of(st.none(), client_tokens())))
def test_bytes_text_mapping_and_parsed_request_give_identical_results(
    document: ShadowDocument, body: JSONObject
) -> None:
    text = json.dumps(body)
    payloads: list[Any] = [body, text, text.encode("utf-8"), UpdateRequest.parse(body)]
    results: list[list[Any]] = []
    for payload in payloads:
        try:
            result = apply_update(document, payload, timestamp=_later(document))
        except errors.ShadowRejectedError as error:
            results.append(["rejected", error.to_rejected()])
        else:
            rendered = [result.document.to_dict(), result.accepted, result.delta, result.documents]
            results.append(["accepted", rendered])
    for other in results[1:]:
        assert strict_equal(other, results[0])


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_the_accepted_body_echoes_the_request_state(
    document: ShadowDocument, body: JSONObject
) -> None:
    result = apply_update(document, body, timestamp=_later(document), limits=ROOMY_LIMITS)
    assert strict_equal(result.accepted["state"], body["state"])


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_the_accepted_metadata_mirrors_the_request_state_at_the_update_time(
    document: ShadowDocument, body: JSONObject
) -> None:
    timestamp = _later(document)
    accepted = apply_update(document, body, timestamp=timestamp, limits=ROOMY_LIMITS).accepted
    assert set(metadata_timestamps(accepted["state"], accepted["metadata"])) <= {timestamp}


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_an_updated_document_never_holds_null(document: ShadowDocument, body: JSONObject) -> None:
    result = apply_update(document, body, timestamp=_later(document), limits=ROOMY_LIMITS)
    assert not contains_null(result.document.to_dict())
    assert not contains_null(result.documents)


@capped_examples(150)
@given(shadow_documents(), update_bodies(), small_limits)
def test_an_accepted_document_fits_the_size_limit(
    document: ShadowDocument, body: JSONObject, limits: ShadowLimits
) -> None:
    try:
        result = apply_update(document, body, timestamp=_later(document), limits=limits)
    except errors.PayloadTooLargeError:
        return
    state = result.document.versioned_state()["state"]
    assert isinstance(state, dict)
    assert encoded_state_size(state) <= limits.max_document_bytes
    assert result.document.size <= limits.max_document_bytes


@capped_examples(150)
@given(shadow_documents(), update_bodies(), small_limits)
def test_an_update_gets_413_exactly_when_the_merged_state_is_over_the_limit(
    document: ShadowDocument, body: JSONObject, limits: ShadowLimits
) -> None:
    merged = apply_update(document, body, timestamp=_later(document), limits=ROOMY_LIMITS)
    state = merged.document.versioned_state()["state"]
    assert isinstance(state, dict)
    if encoded_state_size(state) > limits.max_document_bytes:
        with pytest.raises(errors.PayloadTooLargeError):
            apply_update(document, body, timestamp=_later(document), limits=limits)
    else:
        result = apply_update(document, body, timestamp=_later(document), limits=limits)
        assert result.document == merged.document


@given(shadow_states(max_depth=8), st.sampled_from(("desired", "reported")))
def test_an_update_is_refused_for_nesting_exactly_when_deeper_than_six_levels(
    state: JSONObject, section: str
) -> None:
    body = {"state": {section: state}}
    if container_depth(state) <= 6:
        assert strict_equal(apply_update(None, body, timestamp=1).document.section(section), state)
    else:
        with pytest.raises(errors.InvalidRequestError) as caught:
            apply_update(None, body, timestamp=1)
        assert caught.value.message == NESTING_TEXT


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_apply_update_changes_neither_the_document_nor_the_request(
    document: ShadowDocument, body: JSONObject
) -> None:
    before_document, before_body = document.to_dict(), copy.deepcopy(body)
    apply_update(document, body, timestamp=_later(document), limits=ROOMY_LIMITS)
    assert strict_equal(document.to_dict(), before_document)
    assert strict_equal(body, before_body)


@capped_examples(150)
@given(shadow_documents(), update_bodies())
def test_an_update_at_the_current_version_is_accepted(
    document: ShadowDocument, body: JSONObject
) -> None:
    body["version"] = document.version
    result = apply_update(document, body, timestamp=_later(document), limits=ROOMY_LIMITS)
    assert result.document.version == document.version + 1


def encoded_size_of(document: ShadowDocument) -> int:
    state = {
        name: document.section(name) for name in ("desired", "reported") if document.section(name)
    }
    return len(json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@given(shadow_documents(ROOMY_LIMITS), st.lists(update_bodies(), min_size=1, max_size=6))
def test_size_checks_agree_with_the_exact_size_over_update_chains(
    start: ShadowDocument, bodies: list[JSONObject]
) -> None:
    # Updates derive the merged document's size from the previous one without serialising it;
    # the derived size must be exact, or a 413 could be missed or raised wrongly.
    limits = ShadowLimits(max_document_bytes=2048)
    document = ShadowDocument.from_dict(start.to_dict(), limits=ROOMY_LIMITS)
    for step, body in enumerate(bodies):
        stamp = 2_000_000_000 + step
        # With room to spare the update succeeds, which gives the exact merged size.
        merged = apply_update(document, body, timestamp=stamp, limits=ROOMY_LIMITS).document
        refused = merged.size > limits.max_document_bytes
        with contextlib.suppress(errors.PayloadTooLargeError):
            document = apply_update(document, body, timestamp=stamp, limits=limits).document
            assert not refused
            known = known_size(document)
            exact = encoded_size_of(document)
            assert known is None or known == exact
            continue
        assert refused


@given(related_states())
def test_a_whole_section_sent_again_is_stored_as_sent_stamped_and_sized_exactly(
    pair: tuple[JSONObject, JSONObject],
) -> None:
    # A device that reports everything: most values repeat the stored ones, some retyped
    # (1 -> 1.0, 0 -> false), changed, added or (by their absence) kept.
    stored, sent = pair
    first = apply_update(None, {"state": {"reported": stored}}, timestamp=1, limits=ROOMY_LIMITS)
    result = apply_update(
        first.document, {"state": {"reported": sent}}, timestamp=2, limits=ROOMY_LIMITS
    )
    document = result.document
    for path, value in leaf_paths(sent).items():
        found, held = lookup(document.reported, path)
        assert found
        if value == {}:  # an empty object merges into what is there
            assert isinstance(held, dict)
            continue
        assert json.dumps(held) == json.dumps(value)  # exactly as sent, type and all
        metadata = lookup(document.reported_metadata, path)[1]
        assert set(metadata_timestamps(value, metadata)) <= {2}
    assert document.size == encoded_size_of(document)
