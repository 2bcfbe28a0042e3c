"""Three-way merge of shadow sections: classify every changed path, resolve only true conflicts."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._json import (
    JSONObject,
    JSONValue,
    canonical_json,
    copy_json,
    copy_object,
    describe,
    json_equal,
    json_pointer,
    normalize_section,
)
from shadowsync._tree import MISSING, Path, Value, copy_value, lookup, nest
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError, ShadowRejectedError
from shadowsync.strategies import (
    Conflict,
    ConflictKind,
    ManualReview,
    Resolution,
    Severity,
    Strategy,
    Winner,
)

if TYPE_CHECKING:
    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync.rules import RuleOutcome, RuleSet

Section = Literal["desired", "reported"]


class ChangeClass(enum.Enum):
    """How a path changed on the two sides since the base."""

    OURS_ONLY = "ours_only"
    """Only our side changed it: a fast-forward to ours."""
    THEIRS_ONLY = "theirs_only"
    """Only their side changed it: a fast-forward to theirs."""
    BOTH_SAME = "both_same"
    """Both sides made the same change."""
    STALE = "stale"
    """One side's change is older than the base's value for the path; it is ignored."""
    CONCURRENT = "concurrent"
    """Both sides changed it differently: a conflict, settled by a strategy."""


@attrs.frozen(kw_only=True)
class PathChange:
    """A changed path and how it was classified."""

    path: Path
    change: ChangeClass


def _render(value: Value) -> JSONValue:
    return None if value is MISSING else copy_json(value)


@attrs.frozen(kw_only=True)
class ConflictRecord:
    """One conflicting path in a `ConflictReport`: what clashed and how it was settled."""

    path: Path
    section: Section
    kind: ConflictKind
    severity: Severity
    base: Value
    ours: Value
    theirs: Value
    strategy: str
    winner: Winner
    value: Value
    reason: str
    review_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON form (``null`` stands for an absent value) for events and audit records.

        ``path`` is the dotted form people read (``firmware.version``); ``pointer`` is the same
        path as a JSON Pointer, which stays exact when a key holds a ``.`` or a ``/``.
        """
        base, ours, theirs, value = self.base, self.ours, self.theirs, self.value
        return {
            "path": ".".join(self.path),
            "pointer": json_pointer(self.path),
            "section": self.section,
            # The members' own attributes: the enum properties cost a call each.
            "kind": self.kind._value_,
            "severity": self.severity._name_.lower(),
            # `_render` without the call (a decision renders every conflict's four values).
            "base": None if base is MISSING else copy_json(base),
            "ours": None if ours is MISSING else copy_json(ours),
            "theirs": None if theirs is MISSING else copy_json(theirs),
            "strategy": self.strategy,
            "winner": self.winner,
            "value": None if value is MISSING else copy_json(value),
            "reason": self.reason,
            "reviewId": self.review_id,
        }


@attrs.frozen
class ConflictReport:
    """Every conflict of one merge, machine-readable; empty when nothing clashed."""

    records: tuple[ConflictRecord, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ConflictRecord]:
        return iter(self.records)

    def __bool__(self) -> bool:
        return bool(self.records)

    def count_by_kind(self) -> dict[ConflictKind, int]:
        """How many conflicts of each kind."""
        counts: dict[ConflictKind, int] = {}
        for record in self.records:
            counts[record.kind] = counts.get(record.kind, 0) + 1
        return counts

    def to_json(self) -> list[dict[str, Any]]:
        """The report as a list of JSON objects."""
        return [record.to_json() for record in self.records]


@attrs.frozen(kw_only=True)
class ReviewItem:
    """A conflict held for a person. ``approve()`` or ``reject()`` gives the update to apply.

    The ``id`` is derived from the section, path and both values, so the same conflict seen
    twice (for example after a retry) gets the same id.
    """

    id: str
    path: Path
    section: Section
    current: Value
    proposed: Value
    base: Value
    reason: str

    def approve(self) -> JSONObject:
        """The ``state`` of an update that applies the proposed value (``null`` deletes)."""
        return nest((self.section, *self.path), _render(self.proposed))

    def reject(self) -> JSONObject:
        """The ``state`` of an update that confirms the current value."""
        return nest((self.section, *self.path), _render(self.current))

    def to_json(self) -> dict[str, Any]:
        """A JSON form for queues and events (``null`` stands for an absent value).

        ``path`` is dotted for people; ``pointer`` is the exact JSON Pointer of the path.
        """
        return {
            "id": self.id,
            "path": ".".join(self.path),
            "pointer": json_pointer(self.path),
            "section": self.section,
            "current": _render(self.current),
            "proposed": _render(self.proposed),
            "base": _render(self.base),
            "reason": self.reason,
        }


def review_id(section: str, path: Path, current: Value, proposed: Value) -> str:
    """A stable id for a review item."""
    text = canonical_json([section, list(path), _render(current), _render(proposed)])
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:20]


@attrs.frozen(kw_only=True)
class MergeResult:
    """The merged section, the report of every conflict, and what awaits review."""

    merged: JSONObject
    report: ConflictReport
    reviews: tuple[ReviewItem, ...]
    changes: tuple[PathChange, ...]
    escalated: bool = False
    """True when the policy's ``auto_resolve_threshold`` sent every conflict to review."""
    rule_outcome: RuleOutcome | None = None
    """The business rules' verdict on the merged section, when rules were given."""

    @property
    def has_conflicts(self) -> bool:
        """True when at least one path was changed differently on both sides."""
        return bool(self.report)


@attrs.define(kw_only=True, eq=False)
class _Resolver:
    """Carries one merge's settings through the recursion, and collects what it found."""

    policy: ResolutionPolicy
    section: Section
    thing_name: str | None
    shadow_name: str | None
    force_review: bool
    """Hold every conflict for review: the merge found more than the policy allows."""
    ours_source: str
    theirs_source: str
    ours_stamps: Mapping[Path, Any]
    theirs_stamps: Mapping[Path, Any]
    base_stamps: Mapping[Path, Any]
    records: list[ConflictRecord] = attrs.field(init=False, factory=list)
    reviews: list[ReviewItem] = attrs.field(init=False, factory=list)
    changes: list[tuple[Path, ChangeClass]] = attrs.field(init=False, factory=list)
    """Each changed path and its class, in the merge's order (`PathChange` objects are made of
    them at the end, when the caller wants them)."""

    def merge_object(
        self,
        path: Path,
        base: Mapping[str, Any],
        ours: Mapping[str, Any],
        theirs: Mapping[str, Any],
    ) -> JSONObject:
        out: JSONObject = {}
        keys = list(ours)
        # Usually every key of theirs and of the base is one of ours: a check in C says so.
        if not ours.keys() >= theirs.keys():
            keys.extend(k for k in theirs if k not in ours)
        if not ours.keys() >= base.keys():
            keys.extend(k for k in base if k not in ours and k not in theirs)
        for key in keys:
            value = self.merge_value(
                (*path, key),
                base.get(key, MISSING),
                ours.get(key, MISSING),
                theirs.get(key, MISSING),
            )
            if value is not MISSING:
                out[key] = value
        return out

    def merge_value(self, path: Path, base: Value, ours: Value, theirs: Value) -> Value:
        # `same`, called only where Python's == does not already tell the values apart (most
        # of the values compared here differ), nor the values' types: equal scalars of one
        # type are the same JSON.
        if ours is theirs or (ours == theirs and same(ours, theirs)):
            if not same(ours, base):
                self.changes.append((path, ChangeClass.BOTH_SAME))
            return ours
        kind = type(ours)
        if ours is base or (
            ours == base
            and ((kind is type(base) and kind is not dict and kind is not list) or same(ours, base))
        ):
            self.changes.append((path, ChangeClass.THEIRS_ONLY))
            return theirs
        if theirs is base or (theirs == base and same(theirs, base)):
            self.changes.append((path, ChangeClass.OURS_ONLY))
            return ours
        if type(ours) is dict and type(theirs) is dict:
            return self.merge_object(path, base if type(base) is dict else {}, ours, theirs)
        # `_stamp_at`, its usual answer (the path's own stamp) found without the call.
        ours_stamp = self.ours_stamps.get(path)
        if ours_stamp is None:
            ours_stamp = _stamp_at(self.ours_stamps, path)
        theirs_stamp = self.theirs_stamps.get(path)
        if theirs_stamp is None:
            theirs_stamp = _stamp_at(self.theirs_stamps, path)
        base_stamp = _stamp_at(self.base_stamps, path) if self.base_stamps else None
        if base_stamp is not None:
            # Strictly older only: stamps are often whole seconds, and a change made in the
            # same second as the base is a real change, not a replay.
            ours_stale = ours_stamp is not None and ours_stamp < base_stamp
            theirs_stale = theirs_stamp is not None and theirs_stamp < base_stamp
            if ours_stale != theirs_stale:
                self.changes.append((path, ChangeClass.STALE))
                return theirs if ours_stale else ours
        self.changes.append((path, ChangeClass.CONCURRENT))
        return self.resolve(path, base, ours, theirs, ours_stamp, theirs_stamp)

    def resolve(
        self,
        path: Path,
        base: Value,
        ours: Value,
        theirs: Value,
        ours_stamp: Any,
        theirs_stamp: Any,
    ) -> Value:
        severity = self.policy.severity_for(path)
        conflict = Conflict(
            path=path,
            section=self.section,
            base=base,
            ours=ours,
            theirs=theirs,
            ours_stamp=ours_stamp,
            theirs_stamp=theirs_stamp,
            ours_source=self.ours_source,
            theirs_source=self.theirs_source,
            severity=severity,
        )
        strategy: Strategy = self.policy.strategy_for(
            section=self.section, path=path, thing=self.thing_name, shadow=self.shadow_name
        )
        review_severity = self.policy.manual_review_severity
        if self.force_review or (review_severity is not None and severity >= review_severity):
            why = (
                "too many conflicts in one merge"
                if self.force_review
                else f"severity {severity.name.lower()} requires review"
            )
            strategy = ManualReview()
            resolution = strategy.resolve(conflict)
            resolution = attrs.evolve(resolution, reason=f"held for manual review: {why}")
        else:
            resolution = strategy.resolve(conflict)
        _check_resolution(strategy, resolution, conflict)
        item_id = None
        if resolution.review:
            proposed = theirs if resolution.winner == "ours" else ours
            item_id = review_id(self.section, path, resolution.value, proposed)
            self.reviews.append(
                ReviewItem(
                    id=item_id,
                    path=path,
                    section=self.section,
                    current=resolution.value,
                    proposed=proposed,
                    base=base,
                    reason=resolution.reason,
                )
            )
        self.records.append(
            ConflictRecord(
                path=path,
                section=self.section,
                kind=conflict.kind,
                severity=severity,
                base=base,
                ours=ours,
                theirs=theirs,
                strategy=strategy.name,
                winner=resolution.winner,
                value=resolution.value,
                reason=resolution.reason,
                review_id=item_id,
            )
        )
        return resolution.value


def _check_resolution(strategy: Strategy, resolution: object, conflict: Conflict) -> None:
    if not isinstance(resolution, Resolution):
        raise InvalidArgumentError(
            f"strategy {describe(getattr(strategy, 'name', strategy))} returned "
            f"{type(resolution).__name__}, not a Resolution"
        )
    if resolution.winner == "ours" and not same(resolution.value, conflict.ours):
        raise InvalidArgumentError(
            f"strategy {describe(strategy.name)} says ours won but changed it"
        )
    if resolution.winner == "theirs" and not same(resolution.value, conflict.theirs):
        raise InvalidArgumentError(
            f"strategy {describe(strategy.name)} says theirs won but changed it"
        )
    if resolution.winner == "base" and not same(resolution.value, conflict.base):
        raise InvalidArgumentError(
            f"strategy {describe(strategy.name)} says base won but changed it"
        )
    value = resolution.value
    # A side's own value was checked with its section (and is no deeper there than here).
    if value is not MISSING and not (
        value is conflict.ours or value is conflict.theirs or value is conflict.base
    ):
        try:
            normalize_section(
                {"value": resolution.value}, section="resolution", max_depth=64, nulls=False
            )
        except ShadowRejectedError as exc:
            raise InvalidArgumentError(
                f"strategy {strategy.name!r} returned a value that cannot be stored: {exc.detail}"
            ) from None


def same(a: Value, b: Value) -> bool:
    """JSON equality (`json_equal`) where `MISSING` equals only itself."""
    if a is b:
        return True
    # Most values compared in a merge differ: Python's != settles that without another call
    # (and `MISSING` equals no JSON value).
    if a != b or a is MISSING or b is MISSING:
        return False
    return json_equal(a, b)


def _stamp_at(stamps: Mapping[Path, Any], path: Path) -> Any:
    """The stamp of ``path``, else of its nearest stamped ancestor, else the newest below it."""
    if not stamps:
        return None
    for end in range(len(path), 0, -1):
        stamp = stamps.get(path[:end])
        if stamp is not None:
            return stamp
    below = [s for p, s in stamps.items() if p[: len(path)] == path and s is not None]
    return max(below) if below else None


def newest_stamp(node: Any) -> int | None:
    """The newest timestamp in a metadata node (a leaf's, or any below it)."""
    if isinstance(node, dict):
        stamp = node.get("timestamp")
        if type(stamp) is int and len(node) == 1:
            return stamp  # a leaf's: the usual case, settled without a loop
        children: Iterable[Any] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    newest = None
    for child in children:
        # Leaves below are looked at here: a call for each costs more than the rest.
        if type(child) is dict and len(child) == 1:
            found = child.get("timestamp")
            if type(found) is not int:
                found = newest_stamp(child)
        else:
            found = newest_stamp(child)
        if found is not None and (newest is None or found > newest):
            newest = found
    return newest


def _is_leaf_metadata(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and type(node.get("timestamp")) is int


def stamps_from_metadata(metadata: Mapping[str, Any]) -> dict[Path, int]:
    """Per-path timestamps from a shadow section's metadata (leaves, and arrays as a whole).

    ```pycon
    >>> stamps_from_metadata({"a": {"timestamp": 5}, "b": {"c": {"timestamp": 7}},
    ...                       "rgb": [{"timestamp": 3}, {"timestamp": 4}]})
    {('a',): 5, ('b', 'c'): 7, ('rgb',): 4}

    ```
    """
    out: dict[Path, int] = {}

    def walk(node: Mapping[str, Any], path: Path, depth: int) -> None:
        if depth > 64:
            raise InvalidDocumentError("metadata nests too deeply")
        for key, meta in node.items():
            here = (*path, key)
            if isinstance(meta, dict) and not _is_leaf_metadata(meta):
                walk(meta, here, depth + 1)
            else:
                stamp = newest_stamp(meta)
                if stamp is not None:
                    out[here] = stamp

    if not isinstance(metadata, Mapping):
        raise InvalidDocumentError("metadata must be an object")
    walk(metadata, (), 0)
    return out


def stamps_at(metadata: Mapping[str, Any], paths: Iterable[Path]) -> dict[Path, int]:
    """The timestamp of each of ``paths`` in a section's metadata, where it has one.

    A path's stamp is its leaf's, the newest below it, or its nearest stamped ancestor's (a
    leaf that was replaced by an object), as `stamps_from_metadata` would give it, but only the
    given paths are looked at.

    ```pycon
    >>> stamps_at({"a": {"timestamp": 5}, "b": {"c": {"timestamp": 7}, "d": {"timestamp": 9}}},
    ...           [("a",), ("b",), ("a", "x"), ("z",)])
    {('a',): 5, ('b',): 9, ('a', 'x'): 5}

    ```
    """
    out: dict[Path, int] = {}
    for path in paths:
        node: Any = metadata
        for key in path:
            if not isinstance(node, dict):
                node = None
                break
            if len(node) == 1 and type(node.get("timestamp")) is int:
                break  # a stamped ancestor (`_is_leaf_metadata`, without the call)
            if key not in node:
                node = None
                break
            node = node[key]
        stamp = newest_stamp(node) if node is not None and path else None
        if stamp is not None:
            out[path] = stamp
    return out


def section_value(value: object, name: str) -> JSONObject:
    """A private, validated copy of an input section of `merge` (later edits by the caller
    can't leak in), or the `InvalidDocumentError` that `merge` raises for it."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidDocumentError(f"{name} must be an object, got {type(value).__name__}")
    try:
        return normalize_section(value, section=name, max_depth=64, nulls=False)
    except ShadowRejectedError as exc:
        raise InvalidDocumentError(
            f"{name} is too deep: sections nest too deeply to merge ({exc.detail})"
            if "nesting" in exc.message
            else f"{name} must hold only JSON values without null: {exc.message} ({exc.detail})"
        ) from None


def merge(
    base: Mapping[str, Any] | None,
    ours: Mapping[str, Any] | None,
    theirs: Mapping[str, Any] | None,
    *,
    policy: ResolutionPolicy | Strategy | None = None,
    section: Section = "desired",
    thing_name: str | None = None,
    shadow_name: str | None = None,
    ours_source: str = "device",
    theirs_source: str = "cloud",
    ours_stamps: Mapping[Path, Any] | None = None,
    theirs_stamps: Mapping[Path, Any] | None = None,
    base_stamps: Mapping[Path, Any] | None = None,
    rules: RuleSet | None = None,
    timestamp: int = 0,
    desired_version: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> MergeResult:
    """Three-way merge of one shadow section (``desired`` or ``reported``).

    ``base`` is the last state both sides agreed on, ``ours`` and ``theirs`` the two edited
    versions. Every changed path is classified (`ChangeClass`): a change on one side
    only, or the same change on both, is taken as is; objects changed on both sides merge key by
    key, so disjoint edits are never lost; a change older than the base's value for the path
    (by ``*_stamps``) is stale and ignored; only truly concurrent changes reach the strategy the
    policy picks for the path. The inputs are not changed.

    With ``rules``, the merged section is then judged against ``ours`` (the state in force):
    every change a rule refuses is reverted, recorded as a ``BUSINESS_RULE_VIOLATION`` in the
    report, and answered in ``rule_outcome.acknowledgement`` (for ``desired_version``), so no
    rule-violating value is ever in ``merged``. ``timestamp`` is the evaluation time and
    ``metadata`` the per-leaf metadata of ``ours`` (AWS shape), which rules such as
    `MaxRateOfChange` need to know when the value in force was written.

    ```pycon
    >>> result = merge({"a": 1, "b": 1}, {"a": 2, "b": 1}, {"a": 1, "b": 3})
    >>> result.merged, len(result.report)
    ({'a': 2, 'b': 3}, 0)
    >>> result = merge({"a": 1}, {"a": 2}, {"a": 3}, ours_stamps={("a",): 10},
    ...                theirs_stamps={("a",): 20})
    >>> result.merged, result.report.records[0].winner
    ({'a': 3}, 'theirs')

    ```
    """
    resolved = merge_policy(policy, section)
    return merge_sections(
        section_value(base, "base"),
        section_value(ours, "ours"),
        section_value(theirs, "theirs"),
        policy=resolved,
        section=section,
        thing_name=thing_name,
        shadow_name=shadow_name,
        ours_source=ours_source,
        theirs_source=theirs_source,
        ours_stamps=ours_stamps,
        theirs_stamps=theirs_stamps,
        base_stamps=base_stamps,
        rules=rules,
        timestamp=timestamp,
        desired_version=desired_version,
        metadata=metadata,
    )


def merge_policy(policy: ResolutionPolicy | Strategy | None, section: object) -> ResolutionPolicy:
    """`merge`'s checks of its ``section`` and ``policy``, and the policy they give."""
    from shadowsync._conflict.policy import ResolutionPolicy

    if section not in ("desired", "reported"):
        raise InvalidArgumentError(
            f"section must be 'desired' or 'reported', got {describe(section)}"
        )
    if policy is None:
        return ResolutionPolicy()
    if not isinstance(policy, ResolutionPolicy):
        if not isinstance(policy, Strategy):
            raise InvalidArgumentError(
                f"policy must be a ResolutionPolicy or a Strategy, got {type(policy).__name__}"
            )
        return ResolutionPolicy(default=policy)
    return policy


def merge_sections(
    base: JSONObject,
    ours: JSONObject,
    theirs: JSONObject,
    *,
    policy: ResolutionPolicy,
    section: Section,
    thing_name: str | None,
    shadow_name: str | None,
    ours_source: str,
    theirs_source: str,
    ours_stamps: Mapping[Path, Any] | None,
    theirs_stamps: Mapping[Path, Any] | None,
    base_stamps: Mapping[Path, Any] | None = None,
    rules: RuleSet | None = None,
    timestamp: int = 0,
    desired_version: int = 0,
    metadata: Mapping[str, Any] | None = None,
    changes: bool = True,
) -> MergeResult:
    """`merge` of three sections that are already what `section_value` makes of them: private
    copies of plain JSON without ``null`` (at most 64 levels), which are not checked or copied
    again, with the policy `merge_policy` gave. Internal: `merge` calls it once it has checked
    its inputs, and a cloud-side decision with the values it copied from checked documents.
    Without ``changes`` the result's ``changes`` are left empty (a decision reads none)."""
    inputs = (base, ours, theirs)
    resolved_policy = policy

    def run(force_review: bool) -> tuple[_Resolver, JSONObject]:
        resolver = _Resolver(
            policy=resolved_policy,
            section=section,
            thing_name=thing_name,
            shadow_name=shadow_name,
            force_review=force_review,
            ours_source=ours_source,
            theirs_source=theirs_source,
            ours_stamps=ours_stamps or {},
            theirs_stamps=theirs_stamps or {},
            base_stamps=base_stamps or {},
        )
        return resolver, resolver.merge_object((), *inputs)

    try:
        resolver, merged = run(force_review=False)
        threshold = policy.auto_resolve_threshold
        escalated = threshold is not None and len(resolver.records) > threshold
        if escalated:
            resolver, merged = run(force_review=True)
        merged = copy_object(merged)
    except RecursionError:
        raise InvalidDocumentError("the sections nest too deeply to merge") from None
    records = list(resolver.records)
    outcome = None
    if rules is not None:
        outcome = rules.evaluate(
            section,
            inputs[1],
            merged,
            timestamp=timestamp,
            metadata=metadata,
            desired_version=desired_version,
            thing_name=thing_name,
            shadow_name=shadow_name,
        )
        merged = outcome.accepted
        for violation in outcome.violations:
            current = copy_value(lookup(inputs[1], violation.path))
            records.append(
                ConflictRecord(
                    path=violation.path,
                    section=section,
                    kind=ConflictKind.BUSINESS_RULE_VIOLATION,
                    severity=Severity.HIGH,
                    base=copy_value(lookup(inputs[0], violation.path)),
                    ours=current,
                    theirs=copy_value(lookup(inputs[2], violation.path)),
                    strategy=f"rule:{violation.rule}",
                    winner="ours",
                    value=current,
                    reason=violation.reason,
                )
            )
    return MergeResult(
        merged=merged,
        report=ConflictReport(tuple(records)),
        reviews=tuple(resolver.reviews),
        changes=(
            tuple(PathChange(path=path, change=change) for path, change in resolver.changes)
            if changes
            else ()
        ),
        escalated=escalated,
        rule_outcome=outcome,
    )
