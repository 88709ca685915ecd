#!/usr/bin/env python3
"""A Python `websockets` client that holds a conversation with
interop/gateway/chat.sh behind Duplex's process bridge.

Usage:
    chat_client.py URL ENDING

URL is the bridge's ws:// URL with the query "name=py". ENDING is "bye"
(the script exits 0: close 1000 "exit status 0") or "fail" (the script
exits 7: close 1011 "exit status 7"). Every answer and the close code and
reason are checked exactly. Exit status 0 on success; otherwise a message
on stderr and status 1.
"""

import asyncio
import sys

import websockets
from websockets.exceptions import ConnectionClosed


def fail(msg):
    sys.stderr.write("chat_client.py: " + msg + "\n")
    sys.exit(1)


async def expect(ws, want):
    got = await asyncio.wait_for(ws.recv(), 20)
    if not isinstance(got, str):
        fail("got a binary message %r, want text %r" % (got, want))
    if got != want:
        fail("got %r, want %r" % (got, want))


async def main(url, ending):
    async with websockets.connect(url, compression=None) as ws:
        await expect(ws, "hello 127.0.0.1, you asked for name=py on /chat")
        await ws.send("hi")
        await expect(ws, "1: HI")
        await ws.send("h\u00e9llo w\u00f6rld")
        await expect(ws, "2: H\u00e9LLO W\u00f6RLD")
        await ws.send(b"bytes")  # a binary message is a line too
        await expect(ws, "3: BYTES")
        await ws.send(ending)
        if ending == "bye":
            await expect(ws, "bye after 4 messages")
            want = (1000, "exit status 0")
        else:
            await expect(ws, "failing")
            want = (1011, "exit status 7")
        try:
            extra = await asyncio.wait_for(ws.recv(), 20)
            fail("got %r after the last answer, want the close" % (extra,))
        except ConnectionClosed:
            pass
        got = (ws.close_code, ws.close_reason)
        if got != want:
            fail("closed with %r, want %r" % (got, want))
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("bye", "fail"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
