"""Filters: per-exchange hooks in the request and response phases.

A filter plugin is registered in the ``mesh.filters`` entry-point group as a
factory ``factory(config: Mapping[str, Any]) -> Filter``. Listener config names
filters in order; at load time the chain is compiled into two tuples of bound
methods, which the proxy calls in a plain loop (about 15x cheaper than a
plugin-manager hook call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from mesh.codec import Status
from mesh.stream import Exchange

__all__ = ["Filter", "FilterChain", "RequestHook", "ResponseHook", "compile_chain"]

#: Returns None to continue, or a Status to answer locally and stop.
RequestHook = Callable[[Exchange], "Status | None"]
ResponseHook = Callable[[Exchange], None]


@runtime_checkable
class Filter(Protocol):
    """A filter may define either hook or both.

    ``on_request(exchange)`` runs after routing keys are available and before
    routing; it may edit ``exchange.request.fields`` or return a Status to
    stop the exchange with that local reply. ``on_response(exchange)`` runs
    when the response head arrives and may edit ``exchange.response.fields``.
    Hooks must not block: they run on the event loop's hot path.

    A filter may also set ``protocols``, a set of codec names: it then only ever acts on
    those codecs' exchanges (the ``forwarded`` filter: HTTP). Requests of other codecs may
    skip it, and skip the exchange it would need (mesh/proxy/plain.py).
    """


class FilterChain:
    __slots__ = ("request", "response", "_protocols", "_acts")

    def __init__(self, request: tuple[RequestHook, ...], response: tuple[ResponseHook, ...],
                 protocols: tuple[frozenset[str] | None, ...] = ()) -> None:
        self.request = request
        self.response = response
        #: each filter's ``protocols`` (None: every protocol)
        self._protocols = protocols if protocols else (None,) * (len(request) + len(response))
        self._acts: dict[str, bool] = {}

    def acts_on(self, codec: str) -> bool:
        """Could any filter of the chain act on an exchange of ``codec``?"""
        acts = self._acts.get(codec)
        if acts is None:
            acts = self._acts[codec] = any(p is None or codec in p for p in self._protocols)
        return acts


def compile_chain(factories: Sequence[tuple[Callable[[Mapping[str, Any]], Any], Mapping[str, Any]]]
                  ) -> FilterChain:
    """Instantiate filters in order and keep only the hooks each defines."""
    instances = [factory(config) for factory, config in factories]
    return FilterChain(
        tuple(f.on_request for f in instances if hasattr(f, "on_request")),
        tuple(f.on_response for f in instances if hasattr(f, "on_response")),
        tuple(_protocols(f) for f in instances
              if hasattr(f, "on_request") or hasattr(f, "on_response")),
    )


def _protocols(instance: Any) -> frozenset[str] | None:
    protocols = getattr(instance, "protocols", None)
    return frozenset(protocols) if protocols is not None else None
