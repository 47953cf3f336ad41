"""A TCP proxy in front of a gateway process that can lose answers, for the client's retry tests.

Connections are forwarded byte for byte. :meth:`FaultyProxy.lose_next_answers` makes the next
connections forward their request, wait until the gateway has answered it (so it was decided), and
close the client's socket without passing the answer on: the lost answer of a real network.
:meth:`FaultyProxy.refuse_next` answers the next requests with a 503 and ``Retry-After`` itself,
without forwarding them, as a gateway whose store cannot commit does. Every request that reached the
proxy is kept in :attr:`FaultyProxy.requests`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HOST = "127.0.0.1"
IO_TIMEOUT = 10.0


def read_request(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 request (headers and a ``Content-Length`` body), or what came before EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class FaultyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[bytes] = []
        self._lose = 0
        self._refuse = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def lose_next_answers(self, count: int = 1) -> None:
        with self._lock:
            self._lose = count

    def refuse_next(self, count: int = 1) -> None:
        with self._lock:
            self._refuse = count

    def start(self) -> FaultyProxy:
        self._spawn(self._accept)
        return self

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(IO_TIMEOUT)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.settimeout(IO_TIMEOUT)
            self._sockets.append(client)
            self._spawn(self._serve, client)

    def _take(self, kind: str) -> bool:
        with self._lock:
            left = self._lose if kind == "lose" else self._refuse
            if left <= 0:
                return False
            if kind == "lose":
                self._lose -= 1
            else:
                self._refuse -= 1
            return True

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            while not self._closed.is_set():
                request = read_request(client)
                if not request:
                    return
                self.requests.append(request)
                if self._take("refuse"):
                    body = b'{"detail":"the store could not commit; nothing was stored"}'
                    client.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body)
                    )
                    return
                if upstream is None:
                    upstream = socket.create_connection((HOST, self.upstream_port), timeout=IO_TIMEOUT)
                    self._sockets.append(upstream)
                upstream.sendall(request)
                if self._take("lose"):
                    upstream.recv(65536)  # the gateway answered: the order is decided
                    return  # ... and the answer is lost with the connection
                self._pipe_answer(upstream, client)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _pipe_answer(self, upstream: socket.socket, client: socket.socket) -> None:
        """Pass the answer back; a streamed answer (the event stream) is piped until either side ends."""
        first = upstream.recv(65536)
        if not first:
            raise OSError("the gateway closed the connection")
        client.sendall(first)
        head = first.partition(b"\r\n\r\n")[0].lower()
        if b"content-length:" in head:
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0].strip())
            got = len(first.partition(b"\r\n\r\n")[2])
            while got < length:
                chunk = upstream.recv(65536)
                if not chunk:
                    raise OSError("the gateway closed the connection")
                client.sendall(chunk)
                got += len(chunk)
            return
        while True:  # chunked or streamed: until the gateway ends it
            chunk = upstream.recv(65536)
            if not chunk:
                raise OSError("the gateway ended the answer")
            client.sendall(chunk)


@contextmanager
def faulty_proxy(upstream_port: int) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.close()
