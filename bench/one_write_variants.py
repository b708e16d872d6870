"""A way of writing answers that bench/one_write.py measures and the API does not use.

`AtCompletion`: api/http_protocol.py's transport, but each answer sent the moment it is whole
(uvicorn's `on_response_complete`) instead of at the end of the event loop's turn: also one
segment an answer, so it separates what one segment buys from what holding a turn's answers
to its end buys."""

from __future__ import annotations

from api.http_protocol import OneWriteProtocol


class AtCompletion(OneWriteProtocol):
    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()
