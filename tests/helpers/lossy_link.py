"""A TCP link to an engine's unix socket that can lose one reply: the connection fault a retry must survive.

The engine runs the command and answers; the link then drops the connection instead of passing the answer
on, as a network that fails at that moment (or an engine killed right after a script ran) would. The
client sees a broken connection for a command that did take effect.

With `half_open`, an engine that dies leaves the client's side of each connection open and silent, as
a peer whose host went away without a FIN does: the client learns of it only when it next sends a
command, which then fails (reset) without having reached any engine.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


class LossyLink:
    def __init__(self, target_socket: str, *, half_open: bool = False) -> None:
        self._target = target_socket
        self._half_open = half_open
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.lost = 0  # replies dropped so far
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def lose_next_reply_to(self, marker: bytes) -> None:
        """Drop the connection of the next command holding `marker` once the engine answers it."""
        with self._lock:
            self._marker = marker

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self._target)
            except OSError:  # the engine is down: so is this connection
                _close(client, upstream)
                continue
            with self._lock:
                self._sockets += [client, upstream]
            doomed, gone = threading.Event(), threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, doomed, gone), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, doomed, gone), daemon=True).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, doomed: threading.Event, gone: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if gone.is_set():  # half open: the command that finds the engine gone gets a reset
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        doomed.set()  # before the engine can answer: set ahead of forwarding the command
                upstream.sendall(data)
        _close(client, upstream)

    def _replies(
        self, upstream: socket.socket, client: socket.socket, doomed: threading.Event, gone: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if doomed.is_set():
                    with self._lock:
                        self.lost += 1
                    break
                client.sendall(data)
            else:
                if self._half_open:  # the engine closed: say nothing to the client until it sends
                    gone.set()
                    return
        _close(client, upstream)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            _close(*self._sockets)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@contextlib.contextmanager
def lossy_link(target_socket: str, *, half_open: bool = False) -> Iterator[LossyLink]:
    link = LossyLink(target_socket, half_open=half_open)
    try:
        yield link
    finally:
        link.close()
