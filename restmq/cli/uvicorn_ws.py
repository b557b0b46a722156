"""uvicorn's websockets-sansio protocol, able to write many text frames with one event and one write.

An ASGI `websocket.send` carries one message: a stream consumer with 100 messages due paid 100 events,
100 frames built through websockets' state machine and 100 transport writes (each a syscall). This
protocol offers the `restmq.websocket.texts` scope extension (restmq/web/sse.py WS_TEXTS): a
`websocket.send` event with "texts", a list of UTF-8 payloads, becomes one text frame each, written
at once. Clients still get one frame a message. Without permessage-deflate the frames are built
here directly; with it, websockets compresses each one in order, as for a single send.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State
from websockets.server import ServerProtocol

from restmq.web.sse import WS_TEXTS, ws_frames


class BatchingWebSocketProtocol(WebSocketsSansIOProtocol):
    conn: ServerProtocol

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the application runs from the next loop turn: it sees the extension
            scope["extensions"][WS_TEXTS] = {}

    async def send(self, message: Any) -> None:
        texts: list[bytes] | None = message.get("texts")
        if texts is None or message["type"] != "websocket.send":
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' with texts in this state.")
        conn = self.conn
        if conn.state is not State.OPEN:  # as websockets' own send_text: the peer is closing
            raise ClientDisconnected()
        if conn.extensions:  # permessage-deflate: one compression context, frames compressed in order
            try:
                for text in texts:
                    conn.send_text(text)
            except InvalidState:
                raise ClientDisconnected() from None
            self.transport.write(b"".join(conn.data_to_send()))
        else:
            self.transport.write(ws_frames(texts))
