"""A WebSocket server written with Python's websockets library, for testing
duplex connect against a peer that Duplex did not write.

It listens on 127.0.0.1 on a free port and prints the port on a line.
Paths: /echo echoes every message; /close4001 reads one message, answers
"ho" and closes with code 4001 and reason "bye".
"""

import asyncio
import sys

import websockets


def request_path(ws, path):
    if path is not None:
        return path
    request = getattr(ws, "request", None)  # websockets >= 13's new API
    if request is not None:
        return request.path
    return ws.path  # the legacy API


async def handler(ws, path=None):
    path = request_path(ws, path)
    if path == "/echo":
        async for message in ws:
            await ws.send(message)
    elif path == "/close4001":
        await ws.recv()
        await ws.send("ho")
        await ws.close(4001, "bye")
    else:
        await ws.close(1008, "unknown path")


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = list(server.sockets)[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
