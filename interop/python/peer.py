#!/usr/bin/env python3
"""Interop peer built on the Python `websockets` library.

Usage:
    peer.py [--as-go] [--compress[=PARAMS]] client URL
                           connect to URL (ws://host:port/interop?closer=go|peer)
    peer.py [--as-go] [--compress[=PARAMS]] server PORT
                           listen on 127.0.0.1:PORT (0 = any free port), print
                           "listening PORT" on stdout when ready, serve exactly
                           one connection, then exit.

Both modes run the scenario shared by every interop peer (see interop/README.md):

  phase 1: the server sends the sequence, the client checks it;
  phase 2: the client sends the sequence, the server checks it;
  phase 3: the closer (query parameter `closer`: "go" = the other side,
           "peer" = this program) closes with its code and reason, the
           other side checks the code and reason it received.

Exit status 0 on success; on any mismatch a message on stderr and status 1.

With --as-go (first argument) the program plays the Go side instead: it closes
with the Go code and reason when closer=go and expects the peer's when
closer=peer. That lets two peers check each other without the Go package.

With --compress the program negotiates permessage-deflate (and fails when
the other side does not) and runs the compression scenario instead of the
plain one. Bare, it uses the library's defaults (a client offers
"permessage-deflate; client_max_window_bits"; a server accepts with 12-bit
windows both ways). --compress=PARAMS, a comma-separated list of RFC 7692
parameters such as server_max_window_bits=10,client_no_context_takeover, is
the client's offer or the server's configuration instead.

It works with both API generations of `websockets`: the asyncio API
(websockets.asyncio, 13+) when present, else the legacy API (<= 12, such as
Debian 12's 10.4). Without --compress, compression is disabled. The message
size limit is raised.
"""

import array
import asyncio
import sys
import urllib.parse

import websockets

try:  # websockets >= 13
    from websockets.asyncio.client import connect as new_connect
    from websockets.asyncio.server import serve as new_serve

    NEW_API = True
except ImportError:  # legacy API only
    NEW_API = False

from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode

MAX_SIZE = 64 << 20  # well above the 16 MiB messages of the scenario
TIMEOUT = 280  # seconds; the whole run, as a safety net (below the Go test's 5 min)
CLOSE_TIMEOUT = 60  # seconds; closing handshake

SIZES = [0, 125, 126, 65536, 16 << 20]
CLOSES = {"go": (4001, "go closes ✓"), "peer": (4002, "peer closes ✓")}
SELF = "peer"  # "go" with --as-go
COMPRESS = None  # with --compress: the RFC 7692 parameters, {name: value or True}

_BIN_PERIOD = bytes((i * 31 + 7) % 256 for i in range(256))


class Mismatch(Exception):
    pass


def text_payload(n):
    """'é' (C3 A9) repeated n//2 times, plus 'x' if n is odd: n UTF-8 bytes."""
    return ("é" * (n // 2) + "x" * (n % 2)).encode("utf-8")


def binary_payload(n):
    """Bytes (i*31+7) mod 256 for i in 0..n-1 (period 256)."""
    reps = n // 256 + 1
    return (_BIN_PERIOD * reps)[:n]


def plain_sequence():
    """The 20 messages of the plain scenario."""
    for kind in ("text", "binary"):
        for n in SIZES:
            data = text_payload(n) if kind == "text" else binary_payload(n)
            for frag in (False, True):
                yield kind, None, frag, data


def json_payload(n):
    """The records {"id":I,"user":"userI","tags":["alpha","beta","gamma"],"score":S},
    I = 0, 1, 2, ..., S = I*37 mod 1000, concatenated and cut to n bytes."""
    parts, size, i = [], 0, 0
    while size < n:
        r = f'{{"id":{i},"user":"user{i}","tags":["alpha","beta","gamma"],"score":{i * 37 % 1000}}},'
        parts.append(r)
        size += len(r)
        i += 1
    return "".join(parts)[:n].encode("ascii")


def small_payload(k):
    """The 60-byte message number k."""
    return f'{{"seq":{k:04d},"event":"tick","payload":"abcdefghijklmnopqrst"}}'.encode("ascii")


def random_payload(n):
    """n bytes of xorshift32 seeded with n, 4 bytes little-endian per step."""
    words = array.array("I", bytes(4 * ((n + 3) // 4)))
    assert words.itemsize == 4
    x = n & 0xFFFFFFFF
    for i in range(len(words)):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        words[i] = x
    if sys.byteorder == "big":
        words.byteswap()
    return words.tobytes()[:n]


def periodic_payload(n, p):
    """random_payload(p) repeated and cut to n bytes."""
    return (random_payload(p) * (n // p + 1))[:n]


SMALL_MESSAGES = 50


def compress_sequence():
    """The messages of the compression scenario (see interop/README.md)."""
    for n, frag in ((0, False), (10 << 10, False), (10 << 10, True), (1 << 20, False), (1 << 20, True), (16 << 20, False)):
        yield "text", f"json({n})", frag, json_payload(n)
    for k in range(SMALL_MESSAGES):
        yield "text", f"small({k})", False, small_payload(k)
    for n, frag in ((0, False), (100, False), (64 << 10, False), (64 << 10, True), (1 << 20, False)):
        yield "binary", f"random({n})", frag, random_payload(n)
    for n, p in ((64 << 10, 200), (64 << 10, 3000), (256 << 10, 30000)):
        yield "binary", f"periodic({n},{p})", False, periodic_payload(n, p)
    yield "text", f"json({10 << 10})", False, json_payload(10 << 10)


_compress_cache = []


def sequence():
    """The messages of the scenario: (index, kind, label, fragmented, payload bytes)."""
    if COMPRESS is None:
        for i, m in enumerate(plain_sequence()):
            yield (i,) + m
        return
    if not _compress_cache:  # about 20 MB, built once for both directions
        _compress_cache.extend(compress_sequence())
    for i, m in enumerate(_compress_cache):
        yield (i,) + m


def describe(i, kind, label, data, frag):
    name = f"{kind} {label}" if label else kind
    return f"message #{i} ({name}, {len(data)} bytes, {'fragmented' if frag else 'whole'})"


def first_diff(got, want):
    for j, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"first difference at byte {j}: got 0x{a:02x}, want 0x{b:02x}"
    return f"length {len(got)}, want {len(want)}"


async def send_fragmented(ws, kind, data):
    """Send data as exactly 3 frames, split at n//3 and 2*n//3 (byte offsets,
    so text fragments may end in the middle of a UTF-8 sequence)."""
    n = len(data)
    parts = [data[: n // 3], data[n // 3 : 2 * n // 3], data[2 * n // 3 :]]
    if NEW_API:
        # The public API sends each chunk as a non-final frame, then an empty
        # final frame: 3 data frames + 1 empty final continuation.
        await ws.send(iter(parts), text=(kind == "text"))
        return
    # Legacy API: its iterable form also adds an empty final frame and only
    # accepts str for text; write the 3 frames directly.
    op = Opcode.TEXT if kind == "text" else Opcode.BINARY
    await ws.write_frame(False, op, parts[0])
    await ws.write_frame(False, Opcode.CONT, parts[1])
    await ws.write_frame(True, Opcode.CONT, parts[2])


async def send_all(ws):
    for i, kind, label, frag, data in sequence():
        if frag:
            await send_fragmented(ws, kind, data)
        elif kind == "text":
            await ws.send(data.decode("utf-8"))
        else:
            await ws.send(data)


async def recv_all(ws):
    for i, kind, label, frag, want in sequence():
        what = describe(i, kind, label, want, frag)
        try:
            msg = await ws.recv()
        except ConnectionClosed as e:
            raise Mismatch(f"{what}: connection closed instead: {e}") from None
        if isinstance(msg, str):
            got_kind, got = "text", msg.encode("utf-8")
        else:
            got_kind, got = "binary", bytes(msg)
        if got_kind != kind:
            raise Mismatch(f"{what}: got a {got_kind} message of {len(got)} bytes")
        if got != want:
            raise Mismatch(f"{what}: payload differs: {first_diff(got, want)}")


async def close_phase(ws, closer):
    if closer == SELF:
        code, reason = CLOSES[SELF]
        await ws.close(code, reason)  # waits for the closing handshake
        got_code, got_reason = ws.close_code, ws.close_reason
        # The other side must echo our code; echoing the reason is optional.
        if got_code != code:
            raise Mismatch(
                f"after closing with {code}: other side answered code "
                f"{got_code} reason {got_reason!r}, want code {code}"
            )
        if got_reason not in ("", reason):
            raise Mismatch(
                f"after closing with {code} {reason!r}: other side echoed "
                f"reason {got_reason!r}, want {reason!r} or empty"
            )
        return
    code, reason = CLOSES[closer]
    try:
        msg = await ws.recv()
    except ConnectionClosed as e:
        rcvd, closed = e.rcvd, str(e)
    else:
        raise Mismatch(f"expected a close frame, got a message of {len(msg)} units")
    if rcvd is None:
        raise Mismatch(f"expected close frame {code} {reason!r}, got none: {closed}")
    if rcvd.code != code or rcvd.reason != reason:
        raise Mismatch(
            f"close frame: got code {rcvd.code} reason {rcvd.reason!r}, "
            f"want code {code} reason {reason!r}"
        )
    await ws.wait_closed()


def check_compression(ws):
    """With --compress: fail unless permessage-deflate was negotiated."""
    if COMPRESS is None:
        return
    extensions = ws.protocol.extensions if NEW_API else ws.extensions
    pmd = [e for e in extensions if isinstance(e, PerMessageDeflate)]
    if not pmd:
        raise Mismatch(f"permessage-deflate was not negotiated (extensions: {extensions!r})")
    print(f"python peer: negotiated {pmd[0]!r}", file=sys.stderr, flush=True)


async def scenario(ws, role, closer):
    try:
        if closer not in ("go", "peer"):
            raise Mismatch(f"bad closer {closer!r}: want go or peer")
        check_compression(ws)
        if role == "server":
            await send_all(ws)
            await recv_all(ws)
        else:
            await recv_all(ws)
            await send_all(ws)
        await close_phase(ws, closer)
    except Mismatch:
        # Tell the other side, so that its error points here.
        try:
            await asyncio.wait_for(ws.close(1011, "interop peer: mismatch, see its stderr"), 5)
        except Exception:
            pass
        raise


def closer_of(path):
    query = urllib.parse.urlsplit(path).query
    return urllib.parse.parse_qs(query).get("closer", [""])[0]


OPTS = dict(
    max_size=MAX_SIZE,
    ping_interval=None,
    close_timeout=CLOSE_TIMEOUT,
)

DEFLATE_PARAMS = (
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
)


def parse_compress(spec):
    """--compress=PARAMS: "a,b=N" -> {"a": True, "b": N}."""
    params = {}
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        if name not in DEFLATE_PARAMS or name in params:
            raise ValueError(f"--compress: unknown or repeated parameter {name!r}")
        if value and name.endswith("_no_context_takeover"):
            raise ValueError(f"--compress: {name} takes no value")
        if not value and name == "server_max_window_bits":
            raise ValueError(f"--compress: {name} needs a value")
        params[name] = int(value) if value else True
    return params


def conn_opts(role):
    """The options of connect (role "client") or serve ("server")."""
    if COMPRESS is None:
        return dict(OPTS, compression=None)
    if not COMPRESS:  # bare --compress: the library's defaults
        return dict(OPTS, compression="deflate")
    kwargs = {name: COMPRESS.get(name, False if "context" in name else None) for name in DEFLATE_PARAMS}
    factory = ClientPerMessageDeflateFactory if role == "client" else ServerPerMessageDeflateFactory
    return dict(OPTS, compression=None, extensions=[factory(**kwargs)])


async def run_client(url):
    closer = closer_of(url)
    connect = new_connect if NEW_API else websockets.connect
    async with connect(url, **conn_opts("client")) as ws:
        await scenario(ws, "client", closer)


async def run_server(port):
    done = asyncio.get_running_loop().create_future()

    async def handler(ws, *_):
        path = ws.request.path if NEW_API else ws.path
        try:
            await scenario(ws, "server", closer_of(path))
        except BaseException as e:  # report it from the main task
            if not done.done():
                done.set_exception(e)
            raise
        if not done.done():
            done.set_result(None)

    serve = new_serve if NEW_API else websockets.serve
    async with serve(handler, "127.0.0.1", port, **conn_opts("server")) as server:
        real_port = server.sockets[0].getsockname()[1]
        print(f"listening {real_port}", flush=True)
        await done


USAGE = "usage: peer.py [--as-go] [--compress[=PARAMS]] client URL | server PORT"


def main(argv):
    global SELF, COMPRESS
    if len(argv) > 1 and argv[1] == "--as-go":
        SELF = "go"
        argv = argv[:1] + argv[2:]
    if len(argv) > 1 and (argv[1] == "--compress" or argv[1].startswith("--compress=")):
        try:
            COMPRESS = parse_compress(argv[1].partition("=")[2])
        except ValueError as e:
            print(f"{e}\n{USAGE}", file=sys.stderr)
            return 2
        argv = argv[:1] + argv[2:]
    if len(argv) != 3 or argv[1] not in ("client", "server"):
        print(USAGE, file=sys.stderr)
        return 2
    mode, arg = argv[1], argv[2]
    run = run_client(arg) if mode == "client" else run_server(int(arg))
    try:
        asyncio.run(asyncio.wait_for(run, TIMEOUT))
    except Mismatch as e:
        print(f"python peer ({mode}): MISMATCH: {e}", file=sys.stderr)
        return 1
    except asyncio.TimeoutError:
        print(f"python peer ({mode}): timed out after {TIMEOUT}s", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"python peer ({mode}): ERROR: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    api = "asyncio" if NEW_API else "legacy"
    print(
        f"python peer ({mode}, websockets {websockets.__version__} {api} API): ok",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
