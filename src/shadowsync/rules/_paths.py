"""Which paths a rule applies to (`PathPattern`), and paths written as JSON Pointers (RFC 6901)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, TypeAlias

import attrs

from shadowsync.rules._model import RuleConfigError, is_listlike, show

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shadowsync._tree import Path


def _to_parts(value: object) -> Path:
    if not is_listlike(value):
        raise RuleConfigError(
            f"expected a tuple of str keys, got {show(value)}", owner="PathPattern", key="parts"
        )
    parts = tuple(value)
    for part in parts:
        if not isinstance(part, str):
            raise RuleConfigError(
                f"every key must be a str, got {show(part)}", owner="PathPattern", key="parts"
            )
    if not parts:
        raise RuleConfigError("a path needs at least one key", owner="PathPattern", key="parts")
    collapsed: list[str] = []
    for part in parts:
        # "**.**" means the same as "**"; keeping one makes matching linear.
        if part == "**" and collapsed and collapsed[-1] == "**":
            continue
        collapsed.append(part)
    return tuple(collapsed)


@attrs.frozen(kw_only=True)
class PathPattern:
    """Which paths of a section a rule applies to.

    Each part is a key, ``*`` (exactly one key, whatever it is) or ``**`` (any number of keys,
    including none). Only a whole part is a wildcard: ``"l*"`` is a plain key. Build one from a
    dotted string with `parse`, or from a tuple of keys (needed when a key contains a dot).

    ```pycon
    >>> pattern = PathPattern.parse("lights.*.brightness")
    >>> pattern.matches(("lights", "kitchen", "brightness"))
    True
    >>> pattern.matches(("lights", "kitchen", "color"))
    False
    >>> PathPattern.of(("**", "brightness")).matches(("brightness",))
    True

    ```
    """

    parts: Path = attrs.field(converter=_to_parts)

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        """Parse a dotted pattern such as ``"lights.*.brightness"``.

        ```pycon
        >>> PathPattern.parse("firmware.version").parts
        ('firmware', 'version')

        ```
        """
        if not isinstance(text, str):
            raise RuleConfigError(
                f"expected a dotted str, got {show(text)}", owner="PathPattern", key="parse"
            )
        parts = text.split(".")
        if not text or "" in parts:
            raise RuleConfigError(
                f"{show(text)} has an empty key; write keys containing dots as a tuple",
                owner="PathPattern",
                key="parse",
            )
        return cls(parts=tuple(parts))

    @classmethod
    def of(cls, value: str | Sequence[str] | PathPattern) -> PathPattern:
        """A pattern from a dotted string, a sequence of keys, or a pattern (returned as is).

        ```pycon
        >>> PathPattern.of("mode") == PathPattern.of(["mode"])
        True

        ```
        """
        if isinstance(value, PathPattern):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(parts=_to_parts(value))

    def matches(self, path: Sequence[str]) -> bool:
        """Whether ``path`` (a tuple of keys into a section) matches this pattern.

        ```pycon
        >>> PathPattern.parse("a.**").matches(("a", "b", "c"))
        True

        ```
        """
        parts = self.parts
        states = self._closure({0})
        for key in path:
            step = set()
            for i in states:
                if i == len(parts):
                    continue
                part = parts[i]
                if part == "**":
                    step.add(i)  # "**" swallows this key and may swallow more
                elif part == "*" or part == key:
                    step.add(i + 1)
            if not step:
                return False
            states = self._closure(step)
        return len(parts) in states

    def _closure(self, states: set[int]) -> set[int]:
        """Add the states reachable by letting each ``**`` match no key at all."""
        result = set(states)
        for i, part in enumerate(self.parts):
            if part == "**" and i in result:
                result.add(i + 1)
        return result

    def to_config(self) -> str | list[str]:
        """The declarative form: a dotted string, or a list of keys when a key has a dot.

        ```pycon
        >>> PathPattern.of(("ip.v4", "mask")).to_config()
        ['ip.v4', 'mask']

        ```
        """
        if all(part and "." not in part for part in self.parts):
            return ".".join(self.parts)
        return list(self.parts)

    def __str__(self) -> str:
        return ".".join(self.parts)


@functools.lru_cache(maxsize=1024)
def cached_pattern(text: str) -> PathPattern:
    """`PathPattern.parse`, cached: policies and strategies match the same patterns repeatedly."""
    return PathPattern.parse(text)


PathLike: TypeAlias = "str | Sequence[str] | PathPattern"


def pattern_for(owner: str, value: PathLike) -> PathPattern:
    try:
        return PathPattern.of(value)
    except RuleConfigError as err:
        raise RuleConfigError(err.problem, owner=owner, key="path") from None
