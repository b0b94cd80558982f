"""Commands the proxy answers itself, and the ones it refuses, before any routing.

``LocalAnswers.local_answer(request)`` returns the reply events, or ``None``
when the request goes to a shard. It is the optional ``local_answer`` hook of
``mesh.codec.CodecConnection`` that the multiplexed session calls first.
"""

from __future__ import annotations

from mesh.codec import ConnectionOptions, Event, Headers

from ._commands import COMMANDS, Command, hash_slot_key, keys_of
from ._fanout import KeyFanout
from ._resp import error_reply
from ._tx import Transaction

__all__ = ["LocalAnswers"]

_OK = b"+OK\r\n"
_ERROR = [(b":error", b"ERR")]
_SPLIT = frozenset(("mget", "mset", "sum"))


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _entry(cmd: Command) -> bytes:
    """A COMMAND INFO entry: name, arity, flags, first key, last key, step."""
    flags = b"*0\r\n"
    return (b"*6\r\n" + _bulk(cmd.name) + b":%d\r\n" % cmd.arity + flags
            + b":%d\r\n:%d\r\n:%d\r\n" % (cmd.first, cmd.last, cmd.step))


class LocalAnswers:
    """Per-connection state of the commands the proxy answers (name, protocol, auth)."""

    def __init__(self, options: ConnectionOptions) -> None:
        password = options.extra.get("password")
        self._password: bytes | None = password.encode() if isinstance(password, str) else None
        self._authed = self._password is None
        self._blocking = str(options.extra.get("blocking", "dedicated"))
        self._name: bytes | None = None
        self._resp3 = False
        self._quit = False
        self._tx: Transaction | None = None
        #: (key, slot) pinned by WATCH until EXEC, DISCARD or UNWATCH (codecs/redis/_tx.py)
        self._watch: tuple[bytes, bytes] | None = None

    def local_answer(self, request: Headers) -> list[Event] | None:
        """The reply when the proxy answers ``request`` itself; None to forward it."""
        args: list[bytes] = request.extensions["args"]
        name = args[0].lower()
        cmd = COMMANDS.get(name)
        if cmd is None:
            return self._error(request, f"unknown or unsupported command '{_text(args[0])}'")
        request.extensions["cmd"] = cmd  # looked up once: fan_out and the routing key reuse it
        n = len(args)
        if (n != cmd.arity) if cmd.arity > 0 else (n < -cmd.arity):
            return self._error(request, f"wrong number of arguments for '{_text(name)}' command")
        kind = cmd.kind
        if not self._authed and name not in (b"auth", b"hello", b"quit"):
            return self._reply(request, b"-NOAUTH Authentication required.\r\n")
        if kind == "tx" or self._tx is not None:
            return self._transaction(request, name, cmd, args)
        if kind == "key":
            return None
        if kind == "local":
            return self._reply(request, self._answer(name, args))
        if kind == "deny":
            return self._error(request, f"{_text(name).upper()} refused: {cmd.note}")
        if kind == "mset" and (n - 1) % 2:
            return self._error(request, f"wrong number of arguments for '{_text(name)}' command")
        if kind != "same" and kind != "block":
            return None  # mget/mset/sum: split per shard by fan_out when keys spread
        if kind == "block" and self._blocking != "dedicated":
            return self._error(request, f"{_text(name).upper()} refused: blocking commands would "
                               "hold a shared upstream connection (protocol_options blocking: "
                               "dedicated runs them on a connection of their own)")
        keys = keys_of(cmd, args)
        slot = hash_slot_key(keys[0])
        if not all(hash_slot_key(k) == slot for k in keys):
            return self._error(request, f"{_text(name).upper()} keys may live on different "
                               "shards; give them a common {hash tag}")
        if kind == "block":
            request.extensions["dedicated"] = True  # mesh/proxy/dedicated.py
        return None

    def _transaction(self, request: Headers, name: bytes, cmd: Command,
                     args: list[bytes]) -> list[Event] | None:
        """MULTI/EXEC/DISCARD, and every command between them (codecs/redis/_tx.py)."""
        tx = self._tx
        if name == b"multi":
            if tx is not None:
                return self._error(request, "MULTI calls can not be nested")
            self._tx = Transaction(self._watch)
            return self._reply(request, _OK)
        if name in (b"exec", b"discard"):
            if tx is None:
                return self._error(request, f"{_text(name).upper()} without MULTI")
            self._tx = self._watch = None  # EXEC and DISCARD unwatch every key
            answer = tx.finish(request, name)
            return None if answer is None else self._reply(request, answer)
        if name in (b"quit", b"reset"):
            self._tx = self._watch = None
            return self._reply(request, self._answer(name, args))
        if name == b"watch" or name == b"unwatch":
            return self._watching(request, name, cmd, args)
        assert tx is not None
        error = tx.queue(request, cmd, args)
        return None if error is None else self._reply(request, error)

    def _watching(self, request: Headers, name: bytes, cmd: Command,
                  args: list[bytes]) -> list[Event] | None:
        """WATCH pins the client to its keys' shard; UNWATCH lets go (codecs/redis/_tx.py)."""
        if self._tx is not None:
            if name == b"watch":
                return self._error(request, "WATCH inside MULTI is not allowed")
            return self._error(request, "UNWATCH inside MULTI is not supported through the "
                               "sharding proxy (EXEC and DISCARD unwatch anyway)")
        if name == b"unwatch":
            pin, self._watch = self._watch, None
            if pin is None:
                return self._reply(request, _OK)
            Transaction.watch(request, pin)
            return None
        keys = keys_of(cmd, args)
        slot = hash_slot_key(keys[0])
        if any(hash_slot_key(k) != slot for k in keys) or (
                self._watch is not None and self._watch[1] != slot):
            return self._error(request, "WATCH keys may live on different shards; give them a "
                               "common {hash tag}")
        self._watch = self._watch or (keys[0], slot)
        Transaction.watch(request, self._watch)
        return None

    def fan_out(self, request: Headers) -> KeyFanout | None:
        """MGET/MSET/DEL/UNLINK/EXISTS/TOUCH over keys with different hash tags: the parts.

        The optional ``fan_out`` hook of ``mesh.codec.CodecConnection``; None sends the
        command whole to the shard of its first key.
        """
        extensions = request.extensions
        args: list[bytes] = extensions["args"]
        cmd = extensions.get("cmd") or COMMANDS.get(args[0].lower())
        if cmd is None or cmd.kind not in _SPLIT or len(args) < 3:
            return None
        keys = keys_of(cmd, args)
        slot = hash_slot_key(keys[0])
        if all(hash_slot_key(k) == slot for k in keys):
            return None
        return KeyFanout(request, cmd.kind, args)

    def _reply(self, request: Headers, raw: bytes) -> list[Event]:
        fields = _ERROR if raw[:1] == b"-" else []
        return [Headers(request.stream_id, fields, True, {"raw": raw})]

    def _error(self, request: Headers, message: str) -> list[Event]:
        return self._reply(request, error_reply(message))

    def _answer(self, name: bytes, args: list[bytes]) -> bytes:
        if name == b"ping":
            if len(args) > 2:
                return error_reply("wrong number of arguments for 'ping' command")
            return _bulk(args[1]) if len(args) == 2 else b"+PONG\r\n"
        if name == b"echo":
            return _bulk(args[1])
        if name == b"quit":
            self._quit = True
            return _OK
        if name == b"select":
            if args[1] == b"0":
                return _OK
            return error_reply("only database 0 is available through the sharding proxy")
        if name == b"reset":
            self._name, self._resp3 = None, False
            return b"+RESET\r\n"
        if name == b"info":
            return _bulk(b"# Proxy\r\nproxy:rpcmesh\r\nredis_version:7.0.0\r\nredis_mode:proxy\r\n")
        if name == b"auth":
            return self._auth(args[-1], len(args) > 3)
        if name == b"client":
            return self._client(args)
        if name == b"hello":
            return self._hello(args)
        return self._command(args)

    def _auth(self, password: bytes, too_many: bool) -> bytes:
        if too_many:
            return error_reply("syntax error")
        if self._password is None:
            return error_reply("AUTH <password> called without any password configured for the "
                               "default user. Are you sure your configuration is correct?")
        if password != self._password:
            return b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        self._authed = True
        return _OK

    def _client(self, args: list[bytes]) -> bytes:
        sub = args[1].lower()
        if sub == b"setname" and len(args) == 3:
            self._name = args[2] or None
            return _OK
        if sub == b"getname" and len(args) == 2:
            if self._name is None:
                return b"_\r\n" if self._resp3 else b"$-1\r\n"
            return _bulk(self._name)
        if sub == b"setinfo" and len(args) == 4:
            return _OK
        if sub == b"id" and len(args) == 2:
            return b":1\r\n"
        return error_reply(f"CLIENT {_text(args[1]).upper()} is not supported through the proxy")

    def _hello(self, args: list[bytes]) -> bytes:
        version = args[1] if len(args) > 1 else (b"3" if self._resp3 else b"2")
        if version not in (b"2", b"3"):
            return b"-NOPROTO unsupported protocol version\r\n"
        i = 2
        while i < len(args):
            option = args[i].lower()
            if option == b"auth" and i + 2 < len(args):
                reply = self._auth(args[i + 2], False)
                if reply != _OK:
                    return reply
                i += 3
            elif option == b"setname" and i + 1 < len(args):
                self._name = args[i + 1]
                i += 2
            else:
                return error_reply(f"syntax error in HELLO option '{_text(args[i])}'")
        if not self._authed:
            return b"-NOAUTH HELLO must be called with the client already authenticated, otherwise " \
                   b"the HELLO <proto> AUTH <user> <pass> option can be used to authenticate.\r\n"
        self._resp3 = version == b"3"
        pairs = [(b"server", _bulk(b"redis")), (b"version", _bulk(b"7.0.0")),
                 (b"proto", b":%s\r\n" % version), (b"id", b":1\r\n"),
                 (b"mode", _bulk(b"standalone")), (b"role", _bulk(b"master")),
                 (b"modules", b"*0\r\n")]
        head = b"%%%d\r\n" % len(pairs) if self._resp3 else b"*%d\r\n" % (2 * len(pairs))
        return head + b"".join(_bulk(k) + v for k, v in pairs)

    def _command(self, args: list[bytes]) -> bytes:
        sub = args[1].lower() if len(args) > 1 else b""
        if sub == b"count":
            return b":%d\r\n" % len(COMMANDS)
        if sub == b"info":
            names = [a.lower() for a in args[2:]] or list(COMMANDS)
            entries = [_entry(COMMANDS[n]) if n in COMMANDS else b"*-1\r\n" for n in names]
            return b"*%d\r\n" % len(entries) + b"".join(entries)
        if sub == b"docs":
            return b"%0\r\n" if self._resp3 else b"*0\r\n"
        if sub == b"":
            return b"*%d\r\n" % len(COMMANDS) + b"".join(_entry(c) for c in COMMANDS.values())
        return error_reply(f"COMMAND {_text(args[1]).upper()} is not supported through the proxy")


def _text(value: bytes) -> str:
    return value[:64].decode("utf-8", "replace")
