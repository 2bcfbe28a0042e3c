"""Laws of the shadow document: parsing and rendering GetThingShadow bodies."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from shadowsync import JSONObject, ShadowDocument, compute_delta
from tests.strategies import (
    capped_examples,
    contains_null,
    encoded_state_size,
    get_bodies,
    leaf_paths,
    lookup,
    shadow_documents,
    strict_equal,
)


def _state(body: JSONObject) -> dict[str, Any]:
    state = body["state"]
    assert isinstance(state, dict)
    return state


@capped_examples(150)
@given(shadow_documents())
def test_from_dict_of_to_dict_is_the_same_document(document: ShadowDocument) -> None:
    assert ShadowDocument.from_dict(document.to_dict()) == document


@capped_examples(150)
@given(shadow_documents())
def test_from_json_of_to_json_is_the_same_document(document: ShadowDocument) -> None:
    assert ShadowDocument.from_json(document.to_json()) == document


@capped_examples(150)
@given(shadow_documents())
def test_from_json_of_utf8_to_json_is_the_same_document(document: ShadowDocument) -> None:
    assert ShadowDocument.from_json(document.to_json().encode("utf-8")) == document


@capped_examples(150)
@given(shadow_documents())
def test_render_parse_render_keeps_every_value_type_strictly(document: ShadowDocument) -> None:
    # ShadowDocument.__eq__ uses Python equality (1 == 1.0 == True); the body must keep types.
    body = document.to_dict()
    assert strict_equal(ShadowDocument.from_dict(body).to_dict(), body)


@capped_examples(150)
@given(get_bodies())
def test_parsing_a_get_body_keeps_its_state_version_and_timestamp(body: JSONObject) -> None:
    document = ShadowDocument.from_dict(body)
    state = _state(body)
    assert strict_equal(document.desired, state.get("desired", {}))
    assert strict_equal(document.reported, state.get("reported", {}))
    assert document.version == body["version"]
    assert document.timestamp == body["timestamp"]


@capped_examples(150)
@given(shadow_documents())
def test_get_body_has_delta_exactly_when_desired_differs_from_reported(
    document: ShadowDocument,
) -> None:
    expected = compute_delta(document.desired, document.reported)
    state = _state(document.to_dict())
    if expected is None:
        assert "delta" not in state
    else:
        assert strict_equal(state["delta"], expected)


@capped_examples(150)
@given(shadow_documents())
def test_get_body_never_has_metadata_delta(document: ShadowDocument) -> None:
    metadata = document.to_dict()["metadata"]
    assert isinstance(metadata, dict)
    assert "delta" not in metadata


@capped_examples(150)
@given(shadow_documents())
def test_sections_and_their_metadata_appear_only_when_non_empty(document: ShadowDocument) -> None:
    body = document.to_dict()
    metadata = body["metadata"]
    assert isinstance(metadata, dict)
    for name in ("desired", "reported"):
        present = bool(document.section(name))
        assert (name in _state(body)) is present
        assert (name in metadata) is present


@capped_examples(150)
@given(shadow_documents())
def test_size_is_compact_utf8_json_of_the_non_empty_sections(document: ShadowDocument) -> None:
    state = {name: document.section(name) for name in ("desired", "reported")}
    expected = encoded_state_size({name: value for name, value in state.items() if value})
    assert document.size == expected


@capped_examples(150)
@given(shadow_documents())
def test_versioned_state_is_the_get_body_without_delta_and_timestamp(
    document: ShadowDocument,
) -> None:
    body = document.to_dict()
    _state(body).pop("delta", None)
    del body["timestamp"]
    assert strict_equal(document.versioned_state(), body)


@capped_examples(150)
@given(shadow_documents())
def test_stored_documents_never_hold_null(document: ShadowDocument) -> None:
    assert not contains_null(document.to_dict())


@capped_examples(150)
@given(shadow_documents())
def test_to_dict_returns_a_copy_the_document_does_not_share(document: ShadowDocument) -> None:
    before = document.to_dict()
    scribbled = document.to_dict()
    for name in ("desired", "reported", "delta"):
        section = _state(scribbled).get(name)
        if isinstance(section, dict):
            for key in list(section):
                section[key] = "scribbled"
            section["added"] = [1]
    metadata = scribbled["metadata"]
    assert isinstance(metadata, dict)
    metadata.clear()
    assert strict_equal(document.to_dict(), before)


@capped_examples(150)
@given(shadow_documents())
def test_delta_metadata_is_the_desired_metadata_of_the_delta_leaves(
    document: ShadowDocument,
) -> None:
    delta, metadata = document.delta, document.delta_metadata
    if delta is None:
        assert metadata is None
        return
    assert metadata is not None
    for path, value in leaf_paths(delta).items():
        if value == {}:
            continue
        found, expected = lookup(document.desired_metadata, path)
        assert found
        projected, actual = lookup(metadata, path)
        assert projected
        assert strict_equal(actual, expected)
