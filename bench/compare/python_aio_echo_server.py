#!/usr/bin/env python3
"""An asyncio streams echo server: the Python peer for the aio echo benchmark.

One thread, one event loop, asyncio.start_server; each connection loops
`await reader.readexactly(SIZE)`, `writer.write(...)`, `await writer.drain()` (SIZE = --bytes,
64 by default, the message size bench/echo_client.cpp sends). Prints "ready PORT" on stdout once
listening (PORT 0 picks a free port) and exits cleanly on SIGTERM or SIGINT.

Usage: python3 bench/compare/python_aio_echo_server.py HOST PORT [--bytes 64]
       bench/compare/run_echo.sh build/release/bench/echo_client -- \
           python3 bench/compare/python_aio_echo_server.py 127.0.0.1 0
Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


async def serve(host: str, port: int, size: int) -> None:
    writers: set[asyncio.StreamWriter] = set()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                data = await reader.readexactly(size)
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the peer closed (between messages, or mid-message) or reset
        finally:
            writers.discard(writer)
            writer.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # No explicit TCP_NODELAY: asyncio's selector socket transport sets it on every TCP socket
    # (base_events._set_nodelay), as the C++ servers do explicitly.
    server = await asyncio.start_server(echo, host, port)
    bound_port = server.sockets[0].getsockname()[1]
    print(f"ready {bound_port}", flush=True)
    async with server:
        await stop.wait()
        server.close()
        # Python 3.11's wait_closed() does not wait for connections: close them here.
        for w in list(writers):
            w.close()
        await server.wait_closed()
    # The handlers now see their reads fail and return; let them finish.
    await asyncio.sleep(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--bytes", type=int, default=64, help="message size (readexactly)")
    args = parser.parse_args()
    if args.bytes <= 0:
        parser.error("--bytes must be positive")
    asyncio.run(serve(args.host, args.port, args.bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
