"""The ``shadowsync`` command line: deltas, merges, limit checks and audit-log checks on JSON files.

Run ``shadowsync --help`` (or ``python -m shadowsync --help``). Every command reads JSON files
(``-`` reads standard input), calls the public API and prints JSON (or, for ``verify-log``, one
line) on standard output. Exit codes: 0 when all is well; 1 when the check itself failed (an
invalid document, a broken audit chain, a merge that needs review under ``--fail-on-review``);
2 for usage errors and input files that cannot be used (missing, not JSON, not the expected
shape), reported on standard error as ``shadowsync: error: <message>``. Every file is read
through one function, `_Inputs.load`, which holds it to the JSON the library accepts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

from shadowsync import (
    ShadowDocument,
    ShadowLimits,
    __version__,
    apply_merge_patch,
    apply_update,
    compute_delta,
    make_json_patch,
    make_merge_patch,
)
from shadowsync._json import JSONObject, JSONValue, decode_json, kind_phrase, normalize_section
from shadowsync._limits import LOCAL_MAX_DOCUMENT_BYTES, MAX_CONFIGURABLE_DEPTH
from shadowsync.errors import ShadowRejectedError, ShadowSyncError

if TYPE_CHECKING:
    from shadowsync.audit import AuditLog

__all__ = ["main"]

_PROG = "shadowsync"

_OK = 0
_FAILED = 1
_USAGE = 2

# Documents given to `delta` are read under the loosest limits a shadow service may be
# configured with: computing a delta is not a limit check (that is what `validate` is for).
_READ_LIMITS = ShadowLimits(
    max_document_bytes=LOCAL_MAX_DOCUMENT_BYTES, max_depth=MAX_CONFIGURABLE_DEPTH
)


# Any file argument may nest this deep (its outermost value is level 1): as deep as `merge`
# takes a section, and deeper than a stored document's sections (32 levels) wrapped in a fleet
# file's thing and shadow levels.
_MAX_FILE_DEPTH = 64

_T = TypeVar("_T")


class _InputError(Exception):
    """A file argument that cannot be used, or a bad combination of arguments (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors read ``shadowsync: error: ...`` in every subcommand."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(_USAGE, f"{_PROG}: error: {message}\n")


@contextlib.contextmanager
def _about(name: str) -> Iterator[None]:
    """Name the input at fault (a file, the limits) in a library error raised while using it."""
    try:
        yield
    except ShadowSyncError as exc:
        raise _InputError(f"{name}: {exc}") from None


class _Inputs:
    """Reads the file arguments of one run; standard input (``-``) can be read only once."""

    def __init__(self) -> None:
        self._stdin_read = False

    @staticmethod
    def name(path: str) -> str:
        """How a file argument is named in messages."""
        return "<stdin>" if path == "-" else path

    def load(self, path: str, *, lines: bool = False) -> tuple[Any, bytes]:
        """The JSON value in a file argument, and the file's bytes: every file is read here.

        The JSON passes the boundary the library's own inputs pass (`decode_json`): UTF-8, no
        NaN or Infinity, no number beyond a float's range, no lone surrogate, at most
        `_MAX_FILE_DEPTH` levels. With ``lines`` the file is an audit log in JSON Lines and
        the value is the list of its lines' values (blank lines skipped). A file that fails
        is an `_InputError` naming it.
        """
        name = self.name(path)
        data = self._read(path)
        if not lines:
            return self._decode(name, data), data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _InputError(
                f"{name}: the audit log is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        values = [
            self._decode(f"{name}: line {number}", line)
            for number, line in enumerate(text.split("\n"), start=1)
            if line.strip()
        ]
        return values, data

    def json(self, path: str) -> Any:
        """The JSON value in a file argument."""
        return self.load(path)[0]

    def built(self, path: str, build: Callable[[Any], _T]) -> _T:
        """What ``build`` (a library parser such as ``RuleSet.from_dict``) makes of the JSON
        value in a file argument; its refusal names the file."""
        value = self.json(path)
        with _about(self.name(path)):
            return build(value)

    def object(self, path: str, what: str) -> dict[str, Any]:
        """The JSON object in a file argument; anything else is refused naming ``what``."""
        value = self.json(path)
        if not isinstance(value, dict):
            raise _InputError(
                f"{self.name(path)}: {what} must be a JSON object, got {kind_phrase(value)}"
            )
        return value

    def section(
        self,
        path: str,
        section: Literal["desired", "reported"],
        max_depth: int,
        *,
        what: str | None = None,
    ) -> JSONObject:
        """The shadow section in a file argument, checked as the library checks a stored
        ``section``: an object (else refused naming ``what``, by default ``section``), no
        ``null``, at most ``max_depth`` levels."""
        value = self.object(path, what or section)
        try:
            return normalize_section(value, section=section, max_depth=max_depth, nulls=False)
        except ShadowRejectedError as exc:
            raise _InputError(f"{self.name(path)}: {exc.message} ({exc.detail})") from None

    def log(self, path: str) -> AuditLog:
        """The audit log (JSON Lines) in a file argument."""
        from shadowsync.audit import AuditLog

        _, data = self.load(path, lines=True)
        with _about(self.name(path)):
            return AuditLog.from_jsonl(data)

    def _read(self, path: str) -> bytes:
        if path == "-":
            if self._stdin_read:
                raise _InputError("only one file argument can be '-' (standard input)")
            self._stdin_read = True
            buffer = getattr(sys.stdin, "buffer", None)
            if buffer is not None:
                return bytes(buffer.read())
            return sys.stdin.read().encode("utf-8", "surrogatepass")
        try:
            with open(path, "rb") as file:
                return file.read()
        except OSError as exc:
            raise _InputError(f"cannot read {path}: {exc.strerror or exc}") from None

    @staticmethod
    def _decode(where: str, text: bytes | str) -> Any:
        try:
            return decode_json(text, max_depth=_MAX_FILE_DEPTH)
        except ShadowRejectedError as exc:
            raise _InputError(f"{where}: not valid JSON: {exc.detail or exc.message}") from None


_Handler = Callable[[argparse.Namespace, _Inputs], int]


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _command(
    commands: Any, name: str, handler: _Handler, *, help: str, description: str
) -> argparse.ArgumentParser:
    """Add the subcommand ``name``, run by ``handler``."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, description=description)
    parser.set_defaults(handler=handler)
    return parser


# --------------------------------------------------------------------------------------------
# delta
# --------------------------------------------------------------------------------------------


def _add_delta(commands: Any) -> None:
    parser = _command(
        commands,
        "delta",
        _run_delta,
        help="the delta of a shadow document, or of a desired and a reported section",
        description=(
            "Print the AWS delta: the desired values the device has not reported yet, or null "
            "when desired and reported agree. Give a GetThingShadow body (FILE), or the two "
            "sections as --desired and --reported (a missing one counts as empty)."
        ),
    )
    parser.add_argument("file", nargs="?", metavar="FILE", help="a GetThingShadow body")
    parser.add_argument("--desired", metavar="FILE", help="the desired section (a JSON object)")
    parser.add_argument("--reported", metavar="FILE", help="the reported section (a JSON object)")
    parser.add_argument(
        "--format",
        choices=("delta", "merge-patch", "json-patch"),
        default="delta",
        help=(
            "delta (default); or the RFC 7396 merge patch or RFC 6902 JSON Patch that turns "
            "reported into reported with the delta applied"
        ),
    )


def _run_delta(args: argparse.Namespace, inputs: _Inputs) -> int:
    sections = args.desired is not None or args.reported is not None
    if args.file is not None and sections:
        raise _InputError("give either FILE or --desired/--reported, not both")
    if args.file is None and not sections:
        raise _InputError("give a shadow document FILE, or --desired and --reported")
    if args.file is not None:
        document = inputs.built(
            args.file, lambda body: ShadowDocument.from_dict(body, limits=_READ_LIMITS)
        )
        desired, reported = document.desired, document.reported
    else:
        # Each section as a document holds it: the limits FILE is read under.
        depth = _READ_LIMITS.max_depth
        desired = {} if args.desired is None else inputs.section(args.desired, "desired", depth)
        reported = {} if args.reported is None else inputs.section(args.reported, "reported", depth)
    delta = compute_delta(desired, reported)
    if args.format == "delta":
        _print_json(delta)
    else:
        applied = apply_merge_patch(reported, delta or {})
        patch = make_merge_patch if args.format == "merge-patch" else make_json_patch
        _print_json(patch(reported, applied))
    return _OK


# --------------------------------------------------------------------------------------------
# merge
# --------------------------------------------------------------------------------------------


def _add_merge(commands: Any) -> None:
    parser = _command(
        commands,
        "merge",
        _run_merge,
        help="three-way merge of a shadow section, with a conflict report",
        description=(
            "Merge two edited versions (OURS, THEIRS) of a shadow section against their common "
            "BASE, and print the merged section, the conflict report, the items held for "
            "review and whether the policy escalated every conflict to review."
        ),
    )
    parser.add_argument("base", metavar="BASE", help="the section both sides last agreed on")
    parser.add_argument("ours", metavar="OURS", help="our edited section (the device's)")
    parser.add_argument("theirs", metavar="THEIRS", help="their edited section (the cloud's)")
    parser.add_argument(
        "--policy", metavar="POLICY.json", help="a resolution policy (ResolutionPolicy.from_dict)"
    )
    parser.add_argument(
        "--rules", metavar="RULES.json", help='business rules: {"rules": [...]} (RuleSet)'
    )
    parser.add_argument(
        "--section",
        choices=("desired", "reported"),
        default="desired",
        help="which section is merged (default: desired)",
    )
    parser.add_argument("--thing", metavar="T", help="the thing name, for the policy")
    parser.add_argument("--shadow", metavar="S", help="the named shadow, for the policy")
    parser.add_argument(
        "--fail-on-review",
        action="store_true",
        help="exit with 1 when a conflict is held for review",
    )


def _run_merge(args: argparse.Namespace, inputs: _Inputs) -> int:
    from shadowsync import ResolutionPolicy, merge
    from shadowsync.rules import RuleSet

    # The sections are checked here as merge checks them, so that a refusal names the file.
    base = inputs.section(args.base, args.section, _MAX_FILE_DEPTH, what="BASE")
    ours = inputs.section(args.ours, args.section, _MAX_FILE_DEPTH, what="OURS")
    theirs = inputs.section(args.theirs, args.section, _MAX_FILE_DEPTH, what="THEIRS")
    policy = None if args.policy is None else inputs.built(args.policy, ResolutionPolicy.from_dict)
    rules = None if args.rules is None else inputs.built(args.rules, RuleSet.from_dict)
    result = merge(
        base,
        ours,
        theirs,
        policy=policy,
        rules=rules,
        section=args.section,
        thing_name=args.thing,
        shadow_name=args.shadow,
    )
    _print_json(
        {
            "merged": result.merged,
            "conflicts": result.report.to_json(),
            "reviews": [review.to_json() for review in result.reviews],
            "escalated": result.escalated,
        }
    )
    return _FAILED if args.fail_on_review and result.reviews else _OK


# --------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------


def _add_validate(commands: Any) -> None:
    defaults = ShadowLimits()
    parser = _command(
        commands,
        "validate",
        _run_validate,
        help="check a shadow document or an update request against the shadow limits",
        description=(
            "Check a GetThingShadow body (--kind document) or an update request applied to "
            "--base, or to a new shadow (--kind update), against the shadow service's limits. "
            "Prints the size and nesting depth, or the AWS code and message of the rejection "
            "(exit 1)."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the document or update request")
    parser.add_argument(
        "--kind",
        choices=("document", "update"),
        default="document",
        help="what FILE holds (default: document)",
    )
    parser.add_argument(
        "--base", metavar="DOC.json", help="with --kind update: the shadow the update applies to"
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=defaults.max_document_bytes,
        metavar="N",
        help=(
            f"bytes of desired + reported allowed (default: {defaults.max_document_bytes}; "
            f"at most {LOCAL_MAX_DOCUMENT_BYTES})"
        ),
    )
    parser.add_argument(
        "--max-depth",
        type=int,
        default=defaults.max_depth,
        metavar="N",
        help=(
            f"nesting levels allowed in a section (default: {defaults.max_depth}; "
            f"at most {MAX_CONFIGURABLE_DEPTH})"
        ),
    )


def _depth(value: JSONValue) -> int:
    """Nesting levels as `ShadowLimits.max_depth` counts them: objects and arrays, not leaves."""
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def _rejected(error: ShadowRejectedError) -> int:
    report: dict[str, Any] = {"valid": False, "code": error.code, "message": error.message}
    if error.detail:
        report["detail"] = error.detail
    _print_json(report)
    return _FAILED


def _state_rejection(body: Mapping[str, Any], limits: ShadowLimits) -> ShadowRejectedError | None:
    """The service's rejection of the update that would write this document's state, if any.

    This is how a document's limit violations get their AWS code and message (413 for size,
    400 for nesting depth and malformed sections): the update path makes those checks.
    """
    state = body.get("state")
    if isinstance(state, Mapping):
        # The delta is derived data, not part of what was written.
        state = {name: state[name] for name in state if name != "delta"}
    try:
        apply_update(None, {"state": state}, timestamp=0, limits=limits)
    except ShadowRejectedError as exc:
        return exc
    return None


def _run_validate(args: argparse.Namespace, inputs: _Inputs) -> int:
    if args.base is not None and args.kind != "update":
        raise _InputError("--base goes with --kind update")
    with _about("invalid limits"):
        limits = ShadowLimits(max_document_bytes=args.max_bytes, max_depth=args.max_depth)
    if args.kind == "document":
        body = inputs.json(args.file)
        if isinstance(body, Mapping):
            rejection = _state_rejection(body, limits)
            if rejection is not None:
                return _rejected(rejection)
        try:
            document = ShadowDocument.from_dict(body, limits=limits)
        except ShadowSyncError as exc:
            # Not something the update path refuses: a malformed document (metadata, version,
            # nulls). The service would answer a request like it with 400.
            _print_json({"valid": False, "code": 400, "message": str(exc)})
            return _FAILED
    else:
        base = None
        if args.base is not None:
            base = inputs.built(
                args.base, lambda body: ShadowDocument.from_dict(body, limits=limits)
            )
        # Text that is not JSON is an unusable file (exit 2), not a request to judge.
        _, data = inputs.load(args.file)
        try:
            result = apply_update(
                base, data, timestamp=0 if base is None else base.timestamp, limits=limits
            )
        except ShadowRejectedError as exc:
            return _rejected(exc)
        document = result.document
    _print_json(
        {
            "valid": True,
            "bytes": document.size,
            "limit": limits.max_document_bytes,
            "depth": max(
                (_depth(section) for section in (document.desired, document.reported) if section),
                default=0,
            ),
        }
    )
    return _OK


# --------------------------------------------------------------------------------------------
# verify-log
# --------------------------------------------------------------------------------------------


def _add_verify_log(commands: Any) -> None:
    parser = _command(
        commands,
        "verify-log",
        _run_verify_log,
        help="verify the hash chain of an audit log (JSON Lines)",
        description=(
            "Load an audit log written as JSON Lines and verify its hash chain. Prints one "
            "line: OK with the record count and head checksum, or FAILED naming the first bad "
            "record and why (exit 1)."
        ),
    )
    parser.add_argument("log", metavar="LOG.jsonl", help="the audit log")
    parser.add_argument(
        "--expected-head",
        metavar="CHECKSUM",
        help="the head checksum kept when the log was last written (detects truncation)",
    )
    parser.add_argument("--json", action="store_true", help="print the verification result as JSON")


def _run_verify_log(args: argparse.Namespace, inputs: _Inputs) -> int:
    log = inputs.log(args.log)
    result = log.verify(expected_head=args.expected_head)
    if args.json:
        _print_json(
            {
                "ok": result.ok,
                "index": result.index,
                "reason": result.reason,
                "detail": result.detail,
                "head": result.head,
            }
        )
    elif result.ok:
        count = len(log)
        records = f"{count} record" if count == 1 else f"{count} records"
        print(f"OK: {records}, head {result.head}" if count else "OK: 0 records (empty log)")
    else:
        print(f"FAILED at record {result.index}: {result.reason}: {result.detail}")
    return _OK if result.ok else _FAILED


# --------------------------------------------------------------------------------------------
# health
# --------------------------------------------------------------------------------------------


def _add_health(commands: Any) -> None:
    parser = _command(
        commands,
        "health",
        _run_health,
        help="a health report of a fleet's shadows (healthy, warning, conflict, offline)",
        description=(
            "Assess each device of a fleet file: an object mapping thing names to their "
            'shadows, each shadow name ("$default" for the classic one) mapped to a '
            "GetThingShadow body. Conflicts are counted from an audit log when one is given. "
            "Prints one line per device that is not healthy and the totals, or JSON."
        ),
    )
    parser.add_argument("fleet", metavar="FLEET.json", help="thing -> shadow name -> GET body")
    parser.add_argument("--history", metavar="LOG.jsonl", help="the fleet's audit log")
    parser.add_argument(
        "--now", type=int, metavar="EPOCH", help="the time of the report (default: now)"
    )
    parser.add_argument(
        "--shadows",
        metavar="NAMES",
        help="comma-separated shadows every device should have (default: those in the file)",
    )
    parser.add_argument("--offline-after", type=int, default=3600, metavar="SECONDS")
    parser.add_argument("--pending-after", type=int, default=600, metavar="SECONDS")
    parser.add_argument("--conflict-window", type=int, default=86400, metavar="SECONDS")
    parser.add_argument(
        "--conflicts", type=int, default=1, metavar="N", help="conflicts that make 'conflict'"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--fail-unhealthy", action="store_true", help="exit 1 when a device is not healthy"
    )


def _run_health(args: argparse.Namespace, inputs: _Inputs) -> int:
    import time

    from shadowsync.audit import AuditLog
    from shadowsync.cloud import CLASSIC_SHADOW_NAME, HealthThresholds, health_report

    fleet = inputs.object(args.fleet, "a fleet file")
    shadows: dict[str, dict[str | None, Any]] = {}
    names: dict[str | None, None] = {}
    for thing, own in fleet.items():
        if not isinstance(own, dict):
            raise _InputError(
                f"{inputs.name(args.fleet)}: {thing!r} must map shadow names to GET bodies, "
                f"got {kind_phrase(own)}"
            )
        mapped = {None if n == CLASSIC_SHADOW_NAME else n: body for n, body in own.items()}
        shadows[thing] = mapped
        names.update(dict.fromkeys(mapped))
    if args.shadows is not None:
        wanted = [n.strip() for n in args.shadows.split(",") if n.strip()]
        names = dict.fromkeys(None if n == CLASSIC_SHADOW_NAME else n for n in wanted)
    history = AuditLog() if args.history is None else inputs.log(args.history)
    now = args.now if args.now is not None else int(time.time())
    thresholds = HealthThresholds(
        expected_shadows=tuple(names) or (None,),
        offline_after_seconds=args.offline_after,
        pending_after_seconds=args.pending_after,
        conflict_window_seconds=args.conflict_window,
        conflicts_for_conflict=args.conflicts,
    )
    with _about(inputs.name(args.fleet)):
        report = health_report(
            {"thingNames": list(shadows)},
            shadows,
            now=now,
            history=history,
            thresholds=thresholds,
        )
    if args.json:
        _print_json(report.to_json())
    else:
        print(report.to_text())
    unhealthy = any(device.status != "healthy" for device in report.devices)
    return _FAILED if args.fail_unhealthy and unhealthy else _OK


# --------------------------------------------------------------------------------------------
# The parser and the entry point
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="Work with AWS IoT Device Shadow documents in JSON files ('-' reads stdin).",
        epilog=(
            "exit codes: 0 ok; 1 the check failed (invalid document, broken audit chain, "
            "review needed with --fail-on-review); 2 usage error or unusable input file"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Commands on documents, merges and audit logs (the core).
    _add_delta(commands)
    _add_merge(commands)
    _add_validate(commands)
    _add_verify_log(commands)

    # Commands on cloud-side operations (shadowsync.cloud).
    _add_health(commands)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``shadowsync`` command line on ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code: 0 ok, 1 the check failed, 2 a usage error or an unusable input file
    (the message goes to standard error as ``shadowsync: error: <message>``).
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else _USAGE
    handler: _Handler = args.handler
    try:
        return handler(args, _Inputs())
    except (_InputError, ShadowSyncError) as exc:
        message = str(exc)
    except RecursionError:
        message = "the input nests too deeply to process"
    print(f"{_PROG}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return _USAGE
