"""Runs a reconciler's steps on real OS processes, one small HTTP server per component instance.

`prepare` copies the server script to an "image" file (a download), `release` deletes it,
`start` runs the image and waits until the new process answers HTTP on its port, `stop` ends
the instances of a value. What is observed is, per component, the version of the newest
instance whose process is alive.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from shadowsync._tree import nested
from shadowsync.reconcile import Action, Step

if TYPE_CHECKING:
    from shadowsync._json import JSONObject
    from shadowsync._tree import Path as TreePath

SERVER = Path(__file__).with_name("component_server.py")
START_TIMEOUT = 10.0


@attrs.define
class Instance:
    """One started process of a component."""

    component: str
    version: str
    process: subprocess.Popen[bytes]
    port: int
    answered_at: float
    stopped_at: float | None = None


class ProcessSupervisor:
    """Carries out steps on processes (see the module docstring)."""

    def __init__(self, workdir: Path, paths: dict[str, TreePath]) -> None:
        self.images = workdir / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.paths = paths
        self.instances: list[Instance] = []
        self.log: list[tuple[str, str, str]] = []

    def _image(self, component: str, version: str) -> Path:
        return self.images / f"{component}-{version}.py"

    def run(self, step: Step) -> str | None:
        """Carry out ``step``; the error text if it failed."""
        version = str(step.value)
        self.log.append((step.component, step.action.value, version))
        if step.action is Action.PREPARE:
            shutil.copyfile(SERVER, self._image(step.component, version))
            return None
        if step.action is Action.RELEASE:
            self._image(step.component, version).unlink(missing_ok=True)
            return None
        if step.action is Action.STOP:
            for instance in self.alive(step.component):
                if instance.version == version:
                    self._stop(instance)
            return None
        return self._start(step.component, version)

    def _start(self, component: str, version: str) -> str | None:
        image = self._image(component, version)
        if not image.exists():
            return f"{component} {version} was not prepared"
        process = subprocess.Popen(
            [sys.executable, str(image), component, version],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else b""
        if not line:
            process.kill()
            _, err = process.communicate(timeout=START_TIMEOUT)
            return f"exited with status {process.returncode}: {err.decode().strip()}"
        port = int(line)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
                    if json.loads(answer.read())["version"] == version:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    return f"{component} {version} did not answer on port {port}"
                time.sleep(0.02)
        self.instances.append(
            Instance(
                component=component,
                version=version,
                process=process,
                port=port,
                answered_at=time.monotonic(),
            )
        )
        return None

    def _stop(self, instance: Instance) -> None:
        instance.process.terminate()
        instance.process.wait(timeout=10)
        instance.stopped_at = time.monotonic()
        if instance.process.stdout is not None:
            instance.process.stdout.close()
        if instance.process.stderr is not None:
            instance.process.stderr.close()

    def alive(self, component: str) -> list[Instance]:
        """The component's instances whose processes run, oldest first."""
        return [i for i in self.instances if i.component == component and i.process.poll() is None]

    def answers(self, instance: Instance) -> str | None:
        """The version an instance answers HTTP with now, or ``None``."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{instance.port}/", timeout=1) as r:
                version: str = json.loads(r.read())["version"]
                return version
        except OSError:
            return None

    def observed(self) -> JSONObject:
        """Per component, the version of its newest live instance."""
        return nested(
            (path, alive[-1].version)
            for name, path in self.paths.items()
            if (alive := self.alive(name))
        )

    def power_off(self) -> None:
        """Every process dies at once, as in a power cut."""
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.kill()
                instance.process.wait(timeout=10)
                instance.stopped_at = time.monotonic()
            for stream in (instance.process.stdout, instance.process.stderr):
                if stream is not None:
                    stream.close()
