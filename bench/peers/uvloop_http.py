"""A uvloop HTTP server for `make bench-peers`: an asyncio Protocol on
uvloop, the fastest way Python users serve HTTP by hand.  Requests are
counted by their blank line (GET only), answered with a prebuilt response
whose Date a loop timer refreshes every second, one write per batch.

    python3 uvloop_http.py [PORT]    (0 or nothing: a free port, printed)
"""
import asyncio
import socket
import sys
import time
from email.utils import formatdate

import uvloop

RESPONSE = b""


def refresh(loop):
    global RESPONSE
    RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: uvloop\r\nDate: "
                + formatdate(time.time(), usegmt=True).encode()
                + b"\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!")
    loop.call_later(1.0, refresh, loop)


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        if self.pending:
            data = self.pending + data
        n = data.count(b"\r\n\r\n")
        if n:
            end = data.rfind(b"\r\n\r\n") + 4
            self.pending = data[end:]
            self.transport.write(RESPONSE * n)
        else:
            self.pending = data


async def main(port):
    loop = asyncio.get_running_loop()
    refresh(loop)
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=4096)
    print("uvloop-http listening on http://127.0.0.1:%d/" % server.sockets[0].getsockname()[1],
          flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
