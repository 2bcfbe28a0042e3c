"""Business rules: judge each proposed change of a shadow section before it is applied.

A rule looks at one `Change` (a leaf of a section that a proposed update would set,
create or delete) and returns a `Violation` or ``None``. A `RuleSet` is a chain
of rules in the shape of a structlog processor chain: every change is passed down the chain in
order, every rule whose `PathPattern` matches the change's path sees it, and every
violation is collected. The outcome keeps the changes no rule objected to and reverts the others,
and says so in an `Acknowledgement` the device can report back.

```pycon
>>> rules = RuleSet(rules=[
...     Range(path="temperature", minimum=10, maximum=30),
...     OneOf(path="mode", values=["heat", "cool", "off"]),
... ])
>>> outcome = rules.evaluate(
...     "desired",
...     {"temperature": 21, "mode": "heat"},
...     {"temperature": 45, "mode": "cool"},
...     timestamp=1700000000,
...     desired_version=7,
... )
>>> outcome.accepted
{'temperature': 21, 'mode': 'cool'}
>>> [(v.rule, v.reason) for v in outcome.violations]
[('range:temperature', '45 is greater than the maximum 30')]
>>> outcome.acknowledgement.to_dict()["applied"]
['/mode']

```

Rules are also built from plain dicts (for example JSON kept next to a device's configuration):

```pycon
>>> config = {"rules": [{"type": "range", "path": "temperature", "max": 30}]}
>>> [rule] = RuleSet.from_dict(config).rules
>>> rule.maximum, rule.name
(30, 'range:temperature')

```

Everything here is pure: time is passed in as epoch seconds, nothing reads a clock.
"""

from __future__ import annotations

# isort: off
# In the order the API reference shows them: it lists members in the order of their imports here.
from shadowsync.rules._acknowledgement import ACK_KEY
from shadowsync._tree import MISSING
from shadowsync.rules._model import DELETED, RuleConfigError, InvalidAcknowledgementError
from shadowsync.rules._paths import PathPattern
from shadowsync.rules._rule import Change, Violation, Rule
from shadowsync.rules._builtin import Range, OneOf, TypeIs, AllowedTransitions
from shadowsync.rules._semver import SemanticVersion
from shadowsync.rules._builtin import NoFirmwareDowngrade, MaxRateOfChange, Custom
from shadowsync.rules._acknowledgement import Rejection, Acknowledgement
from shadowsync.rules._ruleset import RuleOutcome, RuleSet
from shadowsync.rules._config import rule_from_dict

# isort: on

__all__ = [
    "ACK_KEY",
    "Acknowledgement",
    "AllowedTransitions",
    "Change",
    "Custom",
    "DELETED",
    "InvalidAcknowledgementError",
    "MISSING",
    "MaxRateOfChange",
    "NoFirmwareDowngrade",
    "OneOf",
    "PathPattern",
    "Range",
    "Rejection",
    "Rule",
    "RuleConfigError",
    "RuleOutcome",
    "RuleSet",
    "SemanticVersion",
    "TypeIs",
    "Violation",
    "rule_from_dict",
]
