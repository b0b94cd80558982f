"""The command table: arity, key positions and how the proxy treats each command.

Arity follows Redis' ``COMMAND`` reply: N means exactly N arguments counting
the command name, -N at least N. Keys are at ``first``, ``first + step``, ...
up to ``last`` (negative ``last`` counts from the end, -1 the last argument).

``kind`` says what the proxy does:

- ``key``: forwarded to the shard of its first key;
- ``same``: several keys that must live on one shard (RENAME, SINTER...): refused
  unless all of them hash alike, e.g. share a ``{hash tag}``;
- ``sum`` / ``mget`` / ``mset``: multi-key commands split per shard and merged
  (counts summed, values kept in key order, OK once all shards said OK);
- ``block``: blocking (BLPOP & co): on the client's own upstream connection, or refused;
- ``local``: answered by the proxy itself;
- ``deny``: refused with the reason in ``note``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COMMANDS", "PLAIN_ARITY", "Command", "hash_slot_key", "keys_of"]


class Command(NamedTuple):
    name: bytes
    arity: int
    first: int
    last: int
    step: int
    kind: str
    note: str = ""


_KEYED = """
get 2 set -3 setnx 3 setex 4 psetex 4 getset 3 getdel 2 getex -2 append 3 strlen 2 incr 2 decr 2
incrby 3 decrby 3 incrbyfloat 3 getrange 4 substr 4 setrange 4 setbit 4 getbit 3 bitcount -2
bitpos -3 bitfield -2 bitfield_ro -2
expire -3 pexpire -3 expireat -3 pexpireat -3 ttl 2 pttl 2 expiretime 2 pexpiretime 2 persist 2
type 2 dump 2 restore -4 sort -2 sort_ro -2
hset -4 hsetnx 4 hget 3 hmset -4 hmget -3 hdel -3 hlen 2 hstrlen 3 hkeys 2 hvals 2 hgetall 2
hexists 3 hincrby 4 hincrbyfloat 4 hrandfield -2 hscan -3
lpush -3 rpush -3 lpushx -3 rpushx -3 lpop -2 rpop -2 llen 2 lindex 3 lset 4 lrange 4 ltrim 4
lrem 4 linsert 5 lpos -3
sadd -3 srem -3 smembers 2 sismember 3 smismember -3 scard 2 spop -2 srandmember -2 sscan -3
zadd -4 zincrby 4 zrem -3 zcard 2 zcount 4 zscore 3 zmscore -3 zrank -3 zrevrank -3 zrange -4
zrevrange -4 zrangebyscore -4 zrevrangebyscore -4 zrangebylex -4 zrevrangebylex -4 zlexcount 4
zremrangebyrank 4 zremrangebyscore 4 zremrangebylex 4 zpopmin -2 zpopmax -2 zrandmember -2 zscan -3
pfadd -2 geoadd -5 geodist -4 geohash -2 geopos -2 geosearch -7 georadius -6 georadiusbymember -5
xadd -5 xlen 2 xrange -4 xrevrange -4 xdel -3 xtrim -4
"""

# name arity first last step
_SAME = """
rename 3 1 2 1  renamenx 3 1 2 1  copy -3 1 2 1  smove 4 1 2 1  rpoplpush 3 1 2 1  lmove 5 1 2 1
sinter -2 1 -1 1  sunion -2 1 -1 1  sdiff -2 1 -1 1  sinterstore -3 1 -1 1  sunionstore -3 1 -1 1
sdiffstore -3 1 -1 1  pfcount -2 1 -1 1  pfmerge -2 1 -1 1  msetnx -3 1 -1 2  lcs -3 1 2 1
geosearchstore -8 1 2 1  zrangestore -5 1 2 1
"""

_SPLIT = """
mget -2 1 -1 1 mget  mset -3 1 -1 2 mset  del -2 1 -1 1 sum  unlink -2 1 -1 1 sum
exists -2 1 -1 1 sum  touch -2 1 -1 1 sum
"""

_LOCAL = "ping -1 echo 2 quit -1 select 2 client -2 hello -1 command -1 auth -2 info -1 reset 1"
# transactions: codecs/redis/_tx.py
_TX = "multi 1 exec 1 discard 1 unwatch 1"
# WATCH: its keys pin the client's next transaction to their shard (codecs/redis/_tx.py)
_WATCH = "watch -2 1 -1 1"

# name arity first last step: blocking commands, run on the client's own upstream connection
# (protocol_options blocking: dedicated, the default) or refused (blocking: refuse)
_BLOCK = """
blpop -3 1 -2 1  brpop -3 1 -2 1  brpoplpush 4 1 2 1  blmove 6 1 2 1  bzpopmin -3 1 -2 1
bzpopmax -3 1 -2 1
"""

_DENY = {
    "numkeys blocking commands are not supported through the sharding proxy": "blmpop bzmpop",
    "pub/sub is not supported through the sharding proxy": (
        "subscribe psubscribe ssubscribe unsubscribe punsubscribe sunsubscribe publish spublish "
        "pubsub monitor"),
    "the command would need every shard (keys live on several servers)": (
        "keys scan randomkey dbsize flushall flushdb"),
    "scripts and numkeys commands are not supported through the sharding proxy": (
        "eval evalsha eval_ro evalsha_ro fcall fcall_ro script function zunionstore zinterstore "
        "zdiffstore zunion zinter zdiff zintercard sintercard lmpop zmpop"),
}


def _build() -> dict[bytes, Command]:
    table: dict[bytes, Command] = {}
    words = _KEYED.split()
    for name, arity in zip(words[::2], words[1::2], strict=True):
        table[name.encode()] = Command(name.encode(), int(arity), 1, 1, 1, "key")
    words = _SAME.split()
    for i in range(0, len(words), 5):
        name, arity, first, last, step = words[i : i + 5]
        table[name.encode()] = Command(name.encode(), int(arity), int(first), int(last), int(step),
                                       "same")
    words = _BLOCK.split()
    for i in range(0, len(words), 5):
        name, arity, first, last, step = words[i : i + 5]
        table[name.encode()] = Command(name.encode(), int(arity), int(first), int(last), int(step),
                                       "block")
    words = _SPLIT.split()
    for i in range(0, len(words), 6):
        name, arity, first, last, step, kind = words[i : i + 6]
        table[name.encode()] = Command(name.encode(), int(arity), int(first), int(last), int(step),
                                       kind)
    words = _LOCAL.split()
    for name, arity in zip(words[::2], words[1::2], strict=True):
        table[name.encode()] = Command(name.encode(), int(arity), 0, 0, 0, "local")
    words = _TX.split()
    for name, arity in zip(words[::2], words[1::2], strict=True):
        table[name.encode()] = Command(name.encode(), int(arity), 0, 0, 0, "tx")
    name, arity, first, last, step = _WATCH.split()
    table[name.encode()] = Command(name.encode(), int(arity), int(first), int(last), int(step),
                                   "tx")
    for reason, names in _DENY.items():
        for name in names.split():
            table[name.encode()] = Command(name.encode(), -1, 0, 0, 0, "deny", reason)
    return table


#: Upper-case-insensitive lookup: keys are lower-case command names.
COMMANDS = _build()

#: The arity of each ``key`` command (one key, at argument 1: forwarded whole to its shard),
#: under its lower- and upper-case name: the plain lane's lookup without a ``lower()``.
PLAIN_ARITY = {spelling: cmd.arity for name, cmd in COMMANDS.items() if cmd.kind == "key"
               for spelling in (name, name.upper())}


def keys_of(command: Command, args: list[bytes]) -> list[bytes]:
    """The key arguments of ``args`` (``args[0]`` is the command name)."""
    if command.step <= 0 or len(args) <= command.first:
        return []
    last = command.last if command.last >= 0 else len(args) + command.last
    return args[command.first : last + 1 : command.step]


def hash_slot_key(key: bytes) -> bytes:
    """The part of a key that decides its shard: the first non-empty ``{tag}``, else the key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key
