"""The dubbo codec object: sniffing, roles and routing keys."""

from __future__ import annotations

from typing import Any

from mesh.codecs.hessian2 import HessianError

from mesh.codec import (
    AGAIN,
    FAIL,
    MATCH,
    ConnectionOptions,
    Headers,
    MatchResult,
    PoolMode,
    RequestKeys,
    Role,
)

from ._body import Call
from ._connection import ClientConnection, ServerConnection
from ._frame import MAGIC

__all__ = ["DubboCodec", "DubboKeys"]


class DubboKeys(RequestKeys):
    """service = the interface (service path), method (unwrapped for generic calls),
    version, group (attachment), and ``get(name)``: any attachment."""

    __slots__ = ()

    def _call(self) -> Call | None:
        call: Call | None = self._headers.extensions.get("call")
        return call

    def _compute_service(self) -> str | None:
        call = self._call()
        return call.path if call is not None else None

    def _compute_method(self) -> str | None:
        call = self._call()
        return call.real_method() if call is not None else None

    def _compute_version(self) -> str | None:
        call = self._call()
        if call is None:
            return None
        return call.version or _text(self._attachment("version"))

    def _compute_group(self) -> str | None:
        return _text(self._attachment("group"))

    def get(self, name: str) -> str | None:
        return _text(self._attachment(name))

    def _attachment(self, name: str) -> Any:
        call = self._call()
        if call is None:
            return None
        try:
            return call.attachments.get(name)
        except HessianError:
            return None  # arguments that cannot be stepped over: no attachment matches


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


class DubboCodec:
    """Dubbo 2 over MULTIPLEX upstream connections; frames relayed with their id patched."""

    name = "dubbo"
    pool_mode = PoolMode.MULTIPLEX

    def match(self, prefix: bytes) -> MatchResult:
        if len(prefix) < 2:
            return AGAIN if MAGIC.startswith(prefix) else FAIL
        return MATCH if prefix[:2] == MAGIC else FAIL

    def connection(self, role: Role, options: ConnectionOptions) -> ServerConnection | ClientConnection:
        if role is Role.SERVER:
            return ServerConnection(options)
        return ClientConnection(options)

    def request_keys(self, headers: Headers) -> RequestKeys:
        return DubboKeys(headers)
