"""The example applications (examples/*/run.py) as subprocesses, for tests: started with their one
command, ready once they printed their URLs, stopped with SIGTERM as a user's Ctrl-C would."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    urls: dict[str, str]  # the label of each printed "label: http://..." line -> the URL
    output: list[str] = field(default_factory=list)


@contextlib.contextmanager
def run_demo(name: str, *args: str, wait_for: tuple[str, ...], timeout: float = 60.0) -> Iterator[Demo]:
    """`python examples/<name>/run.py <args>`, once it printed a URL line for each label in `wait_for`."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name / "run.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    demo = Demo(proc, {})

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.output.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not set(wait_for) <= set(demo.urls):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                shown = "\n".join(demo.output)
                raise AssertionError(f"{name} printed no {wait_for} within {timeout:g}s:\n{shown}") from None
            if line is None:
                raise AssertionError(f"{name} exited {proc.wait()}:\n" + "\n".join(demo.output))
            label, sep, rest = line.partition(": http")
            if sep:
                demo.urls[label.strip()] = "http" + rest.strip()
        yield demo
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
