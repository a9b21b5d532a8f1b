"""Benchmark servers, one style per run, on the loop named by --loop.

    servers.py --loop asyncio|uvloop|corio --style protocol|buffered|streams|sock|http [--cpu N]

Prints the port it listens on (127.0.0.1), then serves until killed.
"""
import argparse
import asyncio
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.tr.write(data)


class EchoBuffered(asyncio.BufferedProtocol):
    def __init__(self):
        self.buf = bytearray(65536)
        self.view = memoryview(self.buf)

    def connection_made(self, tr):
        self.tr = tr

    def get_buffer(self, hint):
        return self.buf

    def buffer_updated(self, n):
        self.tr.write(self.view[:n])


RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
            b"Server: bench\r\n\r\nHello, World!")


class Http(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 server: one fixed answer per request."""

    def connection_made(self, tr):
        self.tr = tr
        self.pending = b""

    def data_received(self, data):
        data = self.pending + data if self.pending else data
        n = data.count(b"\r\n\r\n")
        if n:
            self.tr.write(RESPONSE * n)
        self.pending = data[data.rfind(b"\r\n\r\n") + 4:] if n else data


async def streams_handler(reader, writer):
    try:
        await _streams(reader, writer)
    except ConnectionError:
        writer.close()


async def _streams(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def sock_handler(loop, conn):
    try:
        while True:
            data = await loop.sock_recv(conn, 65536)
            if not data:
                break
            await loop.sock_sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


async def serve(style):
    loop = asyncio.get_running_loop()
    if style == "streams":
        srv = await asyncio.start_server(streams_handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
    elif style == "sock":
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(128)
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
    else:
        proto = {"protocol": EchoProtocol, "buffered": EchoBuffered, "http": Http}[style]
        srv = await loop.create_server(proto, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
    print(port, flush=True)
    if style == "sock":
        while True:
            conn, _ = await loop.sock_accept(lsock)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop.create_task(sock_handler(loop, conn))
    await asyncio.Event().wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--cpu", type=int)
    a = ap.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    if a.loop == "corio":
        import corio
        factory = corio.new_event_loop
    elif a.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as r:
        r.run(serve(a.style))


if __name__ == "__main__":
    main()
