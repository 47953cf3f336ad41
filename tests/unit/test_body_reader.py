"""The one body reader (:mod:`ordergate.api.body`), driven by a scripted ASGI ``receive``."""

from __future__ import annotations

from typing import Any

import pytest

from ordergate.api import body as body_module
from ordergate.api.body import read_body
from ordergate.api.http import ClientError

pytestmark = pytest.mark.anyio


class Stream:
    """``receive`` handing out ``chunks`` as ``http.request`` messages, counting what was taken."""

    def __init__(self, chunks: list[bytes], *, then_disconnect: bool = False) -> None:
        self.chunks = chunks
        self.taken = 0
        self.then_disconnect = then_disconnect

    async def __call__(self) -> dict[str, Any]:
        if self.taken == len(self.chunks):
            assert self.then_disconnect, "read past the end of the body"
            return {"type": "http.disconnect"}
        chunk = self.chunks[self.taken]
        self.taken += 1
        more = self.taken < len(self.chunks) or self.then_disconnect
        return {"type": "http.request", "body": chunk, "more_body": more}


def length(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(n).encode())]


async def test_a_body_within_the_limit_is_returned_whole() -> None:
    stream = Stream([b'{"a":', b" 1}"])
    assert await read_body(stream, length(8), 100) == b'{"a": 1}'


async def test_a_declared_length_over_the_limit_is_refused_after_the_body_is_drained() -> None:
    stream = Stream([b"x" * 1000] * 200)

    with pytest.raises(ClientError) as refused:
        await read_body(stream, length(200_000), 65_536)

    assert refused.value.status == 413
    assert "65536 bytes" in refused.value.message
    assert stream.taken == 200  # all of it read, so the client is reading the 413 and not a reset


async def test_a_stream_over_the_limit_without_a_length_is_drained_before_the_413() -> None:
    stream = Stream([b"x" * 1000] * 100)

    with pytest.raises(ClientError) as refused:
        await read_body(stream, [(b"transfer-encoding", b"chunked")], 10_000)

    assert refused.value.status == 413
    assert stream.taken == 100


async def test_the_drain_stops_at_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "DRAIN_BYTES", 50_000)
    stream = Stream([b"x" * 1000] * 100)

    with pytest.raises(ClientError):
        await read_body(stream, [], 10_000)

    assert 50 <= stream.taken <= 52


async def test_a_declared_length_beyond_the_drain_bound_is_refused_without_reading() -> None:
    stream = Stream([b"x"])

    with pytest.raises(ClientError) as refused:
        await read_body(stream, length(64 * 1024 * 1024), 65_536)

    assert refused.value.status == 413
    assert stream.taken == 0


async def test_a_client_expecting_100_continue_is_refused_without_inviting_the_body() -> None:
    stream = Stream([b"x" * 1000] * 100)

    with pytest.raises(ClientError):
        await read_body(stream, [*length(100_000), (b"expect", b"100-continue")], 65_536)

    assert stream.taken == 0


async def test_a_client_that_leaves_mid_body_gets_a_400() -> None:
    with pytest.raises(ClientError) as refused:
        await read_body(Stream([b"{"], then_disconnect=True), length(10), 100)

    assert refused.value.status == 400
