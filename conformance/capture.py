"""Recording real peers' traffic as vectors: a loopback relay that keeps every byte.

Put :class:`Recorder` between a real client and a real server (curl and
nginx, redis-cli and redis-server...), run the client, and each connection
comes back as a :class:`Recording`: what each side wrote, read by read, and
who closed first. :func:`exchange_vectors` turns one into a request vector
and a response vector. scripts/capture_http1_vectors.py is a complete example.

Only loopback addresses are accepted: this records test traffic, nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from mesh.codec import Role

from .vectors import Expect, Vector

__all__ = ["Recorder", "Recording", "exchange_vectors"]

_READ = 65536


@dataclass
class Recording:
    """One relayed connection: the reads from each side, and who closed first."""

    client: list[bytes] = field(default_factory=list)
    server: list[bytes] = field(default_factory=list)
    #: "client" or "server", once one side has closed.
    closed_first: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _open: int = 2


def _require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the recorder relays loopback traffic only, not {host}")


class Recorder:
    """A TCP relay on 127.0.0.1 in front of ``upstream``, recording each connection.

    Use as a context manager; ``port`` is where clients connect.
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        _require_loopback(upstream_host)
        self.upstream = (upstream_host, upstream_port)
        self.recordings: list[Recording] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by __exit__
            upstream = socket.create_connection(self.upstream)
            recording = Recording()
            with self._lock:
                self.recordings.append(recording)
            for src, dst, chunks, side in ((client, upstream, recording.client, "client"),
                                           (upstream, client, recording.server, "server")):
                threading.Thread(target=self._pump, args=(src, dst, chunks, side, recording),
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, chunks: list[bytes], side: str,
              recording: Recording) -> None:
        try:
            while data := src.recv(_READ):
                chunks.append(data)
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            if recording.closed_first is None:
                recording.closed_first = side
            recording._open -= 1
            finished = recording._open == 0
        try:
            dst.shutdown(socket.SHUT_WR)  # pass the close on, as a real peer would see it
        except OSError:
            pass
        if finished:
            src.close()
            dst.close()
            recording.done.set()

    def wait(self, count: int, timeout: float = 10.0) -> list[Recording]:
        """The first ``count`` recordings, once both sides of each have closed."""
        deadline = time.monotonic() + timeout
        while len(self.recordings) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.recordings)} of {count} connections arrived")
            time.sleep(0.01)
        for recording in self.recordings[:count]:
            if not recording.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("a recorded connection did not close in time")
        return self.recordings[:count]


def exchange_vectors(name: str, recording: Recording, *, request: Expect | None = None,
                     response: Expect | None = None, note: str = "") -> list[Vector]:
    """A request vector (what the client wrote) and the response vector answering it.

    The response is marked ``eof`` when the server closed before the client
    did: its end may be the close itself.
    """
    if not recording.client or not recording.server:
        raise ValueError(f"{name}: the recording lacks one direction")
    return [
        Vector(f"{name}.request", "request", tuple(recording.client), Role.SERVER,
               request or Expect(), note=note),
        Vector(f"{name}.response", "response", tuple(recording.server), Role.CLIENT,
               response or Expect(), request=f"{name}.request",
               eof=recording.closed_first == "server", note=note),
    ]
