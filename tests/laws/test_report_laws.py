"""Laws of reports queued while offline: a report is queued by top-level key, or leaf by leaf
where a whole key would not supersede what is still queued; either way the cloud ends with
every report applied in order, and repeating reports does not grow the queue."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shadowsync import JSONObject, json_equal
from shadowsync._device.view import apply_patch
from shadowsync._tree import leaf_paths
from shadowsync.testing import LoopbackPair
from tests.strategies import KEY_POOL, json_scalars

_keys = st.sampled_from(KEY_POOL[:3])
# Reports over a few keys, two levels deep, so that later reports meet earlier ones: whole
# objects, parts of them, deletions (None) and objects replacing scalars and back.
_values = st.recursive(
    st.one_of(json_scalars(), st.none()),
    lambda inner: st.dictionaries(_keys, inner, min_size=1, max_size=3),
    max_leaves=6,
)
reports = st.lists(st.dictionaries(_keys, _values, min_size=1, max_size=3), max_size=8)


def offline_pair(sent: list[JSONObject]) -> LoopbackPair:
    pair = LoopbackPair("lamp")
    pair.connect()
    pair.run_until_quiet()
    pair.disconnect()
    for changes in sent:
        pair.report(changes)
    return pair


@given(reports)
@settings(deadline=None)
def test_the_cloud_holds_every_offline_report_applied_in_order(sent: list[JSONObject]) -> None:
    pair = offline_pair(sent)
    pair.heal()
    assert pair.run_until_quiet()
    expected: JSONObject = {}
    for changes in sent:
        apply_patch(expected, changes)
    document = pair.service.document("lamp")
    assert json_equal(document.reported if document is not None else {}, expected)
    assert pair.queue.pending() == ()


@given(reports)
@settings(deadline=None)
def test_the_queue_keeps_at_most_one_write_per_key_and_per_leaf(sent: list[JSONObject]) -> None:
    pair = offline_pair(sent + sent)  # every report twice: the second round adds nothing
    keys = {key for changes in sent for key in changes}
    paths = {path for changes in sent for path in leaf_paths(changes)}
    assert len(pair.queue.pending()) <= len(keys) + len(paths)
