"""The HTTP adapter of `TargetPoller` on the standard library (`urllib.request`): `fetch_target`.

It is the only module of `shadowsync.reconcile` that opens a connection, and the package does
not import it: `import shadowsync.reconcile` stays free of I/O and of `urllib`. It needs no
third-party package.

```python
from shadowsync.reconcile.http import fetch_target
```
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from shadowsync.errors import InvalidArgumentError
from shadowsync.reconcile._poller import TargetPoller

if TYPE_CHECKING:
    from collections.abc import Callable

    from shadowsync.reconcile._poller import PolledTarget

__all__ = ["MAX_TARGET_BYTES", "fetch_target"]

MAX_TARGET_BYTES = 1 << 20
"""The largest body read (1 MiB); a longer one fails the poll."""


def fetch_target(poller: TargetPoller, clock: Callable[[], float]) -> PolledTarget | None:
    """Run one poll now if one is due: the target the server names, or ``None``.

    ``None`` means no poll was due, or the poll failed (the poller backs off and says why in
    `TargetPoller.last_error`). ``clock`` gives epoch seconds (``time.time`` on a device); it is
    read when the request starts and when the answer is in.
    """
    if not isinstance(poller, TargetPoller):
        raise InvalidArgumentError(f"poller must be a TargetPoller, got {poller!r}")
    request = poller.next_request(clock())
    if request is None:
        return None
    outgoing = urllib.request.Request(request.url, headers=dict(request.headers), method="GET")
    try:
        with urllib.request.urlopen(outgoing, timeout=request.timeout) as answer:
            status = answer.status
            headers = dict(answer.headers.items())
            body = answer.read(MAX_TARGET_BYTES + 1)
    except urllib.error.HTTPError as err:  # urllib raises for 304 and every error status
        status, headers, body = err.code, dict(err.headers.items()) if err.headers else {}, b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        poller.failed(f"cannot reach {request.url}: {exc}", clock())
        return None
    if len(body) > MAX_TARGET_BYTES:
        poller.failed(f"the target is larger than {MAX_TARGET_BYTES} bytes", clock())
        return None
    return poller.response(status, headers, body, clock())
