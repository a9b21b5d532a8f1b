"""corio's behaviour suite for asyncio event loops: written once, run on
stock asyncio (the oracle), uvloop and corio.

    /usr/bin/python3 python/tests/behaviour.py [--loops asyncio uvloop corio] [-k substr]

Each loop runs in its own process; each test gets a fresh loop, a time
limit, and a check that it left no fd open and no handle alive.  A test
that uvloop is known to fail carries the reason (@known(uvloop=...)): it
counts as an expected failure there, and the run fails if it passes.
Ends with "N passed, N failed" per loop; the exit status is non-zero if any
loop has an unexpected result.
"""
import argparse
import asyncio
import collections
import contextvars
import gc
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

TESTS = []
KNOWN = {}


def test(fn):
    TESTS.append(fn)
    return fn


def known(**reasons):
    def deco(fn):
        KNOWN[fn.__name__] = reasons
        return fn
    return deco


def fds():
    return len(os.listdir("/proc/self/fd"))


def local_pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


class Echo(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.tr.write(data)


async def echo_server(loop, proto=Echo):
    srv = await loop.create_server(proto, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


class Collect(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.made = loop.create_future()
        self.events = []

    def connection_made(self, tr):
        self.tr = tr
        self.events.append("made")
        self.made.set_result(tr)

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append("eof")
        if not self.eof.done():
            self.eof.set_result(True)

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


# ---------------------------------------------------------------- ordering

@test
async def call_soon_is_fifo(loop):
    out = []
    for i in range(100):
        loop.call_soon(out.append, i)
    await asyncio.sleep(0)
    assert out == list(range(100)), out


@test
@known(uvloop="uvloop runs I/O callbacks before the callbacks already queued")
async def ready_then_io_then_timers(loop):
    """In one pass asyncio runs what was ready, then I/O callbacks in the
    order the kernel reported them, then due timers."""
    a, b = local_pair()
    out = []
    done = loop.create_future()
    b.send(b"x")
    await asyncio.sleep(0.01)

    def io():
        out.append("io")
        loop.remove_reader(a)

    def later():
        out.append("timer")
        done.set_result(None)

    def start():
        loop.call_later(0, later)
        loop.add_reader(a, io)
        loop.call_soon(out.append, "soon")

    loop.call_soon(start)
    await done
    a.close()
    b.close()
    assert out == ["soon", "io", "timer"], out


@test
async def callbacks_added_in_a_pass_run_next_pass(loop):
    out = []

    def first():
        out.append("first")
        loop.call_soon(out.append, "nested")

    loop.call_soon(first)
    loop.call_soon(out.append, "second")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert out == ["first", "second", "nested"], out


@test
async def stop_runs_the_current_pass(loop):
    out = []
    inner = asyncio.new_event_loop() if False else None
    fut = loop.create_future()

    def stopper():
        out.append("stop")

    loop.call_soon(stopper)
    loop.call_soon(out.append, "after")
    loop.call_soon(fut.set_result, None)
    await fut
    assert out == ["stop", "after"], out


# ---------------------------------------------------------------- timers

@test
async def timers_fire_in_deadline_order(loop):
    out = []
    done = loop.create_future()
    for d in (0.03, 0.01, 0.02, 0.0):
        loop.call_later(d, out.append, d)
    loop.call_later(0.05, done.set_result, None)
    await done
    assert out == [0.0, 0.01, 0.02, 0.03], out


@test
@known(uvloop="uvloop rounds timers to milliseconds and fires them early")
async def timers_never_fire_early(loop):
    done = loop.create_future()
    t0 = loop.time()
    loop.call_later(0.05, lambda: done.set_result(loop.time()))
    t1 = await done
    assert t1 - t0 >= 0.05, t1 - t0
    assert t1 - t0 < 1.0


@test
@known(uvloop="uvloop's handles are not asyncio.TimerHandle instances")
async def cancelled_timer_does_not_run(loop):
    out = []
    h = loop.call_later(0.01, out.append, "no")
    h.cancel()
    assert h.cancelled()
    h2 = loop.call_later(0.02, out.append, "yes")
    assert isinstance(h2, asyncio.TimerHandle), type(h2)
    assert abs(h2.when() - (loop.time() + 0.02)) < 0.01
    await asyncio.sleep(0.04)
    assert out == ["yes"], out


@test
async def timer_cancels_another_due_in_same_pass(loop):
    out = []
    h2 = None

    def first():
        out.append(1)
        h2.cancel()

    when = loop.time() + 0.01
    loop.call_at(when, first)
    h2 = loop.call_at(when + 1e-6, out.append, 2)
    await asyncio.sleep(0.03)
    assert out == [1], out


@test
async def call_at_in_the_past_runs_next_pass(loop):
    out = []
    loop.call_at(loop.time() - 10, out.append, "past")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert out == ["past"], out


@test
async def loop_time_is_monotonic_clock(loop):
    assert abs(loop.time() - time.monotonic()) < 0.01


@test
@known(uvloop="uvloop has no _ready or _scheduled")
async def ready_and_scheduled_are_visible(loop):
    h = loop.call_soon(lambda: None)
    assert isinstance(h, asyncio.Handle)
    assert isinstance(loop._ready, collections.deque)
    assert h in loop._ready
    t = loop.call_later(10, lambda: None)
    assert t in loop._scheduled
    t.cancel()
    h.cancel()
    assert loop._default_executor is None


# ---------------------------------------------------------------- threads

@test
async def call_soon_threadsafe_wakes_a_sleeping_loop(loop):
    fut = loop.create_future()
    loop.call_later(30, lambda: None).cancel()
    keep = loop.call_later(30, lambda: None)
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: (time.sleep(0.05),
                                          loop.call_soon_threadsafe(fut.set_result, "woken")))
    th.start()
    assert await fut == "woken"
    th.join()
    keep.cancel()
    assert time.monotonic() - t0 < 2.0


@test
async def many_threads_post_in_order(loop):
    n, per = 4, 500
    got = collections.defaultdict(list)
    done = loop.create_future()
    count = [0]

    def cb(tid, i):
        got[tid].append(i)
        count[0] += 1
        if count[0] == n * per:
            done.set_result(None)

    def post(tid):
        for i in range(per):
            loop.call_soon_threadsafe(cb, tid, i)

    ths = [threading.Thread(target=post, args=(t,)) for t in range(n)]
    for t in ths:
        t.start()
    await asyncio.wait_for(done, 10)
    for t in ths:
        t.join()
    for tid in range(n):
        assert got[tid] == list(range(per))


@test
async def run_in_executor_and_getaddrinfo(loop):
    assert await loop.run_in_executor(None, sum, [1, 2, 3]) == 6
    infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    assert infos[0][4] == ("127.0.0.1", 80)


@test
async def loop_made_in_one_thread_runs_in_another(loop):
    def scenario():
        lp = FACTORY()  # made here, run in another thread
        out = []

        def run():
            lp.call_later(0.01, lp.stop)
            lp.call_soon(out.append, threading.get_ident())
            lp.run_forever()

        th = threading.Thread(target=run)
        th.start()
        th.join(10)
        lp.close()
        return out, th.ident

    out, ident = await loop.run_in_executor(None, scenario)
    assert out == [ident], (out, ident)


@test
async def call_later_from_another_thread_while_running(loop):
    fut = loop.create_future()
    keep = loop.call_later(0.5, lambda: None)
    threading.Thread(target=lambda: loop.call_later(0.01, fut.set_result, "late")).start()
    assert await asyncio.wait_for(fut, 5) == "late"
    keep.cancel()


@test
async def closing_a_loop_with_open_transports(loop):
    def scenario():
        lp = FACTORY()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        tr, pr = lp.run_until_complete(
            lp.create_connection(asyncio.Protocol, "127.0.0.1", lsock.getsockname()[1]))
        peer, _ = lsock.accept()
        lp.close()  # the transport stays open, its loop is gone
        import warnings
        with warnings.catch_warnings():  # "unclosed transport": expected here
            warnings.simplefilter("ignore", ResourceWarning)
            del tr, pr
            gc.collect()
        peer.close()
        lsock.close()
        return "ok"

    assert await loop.run_in_executor(None, scenario) == "ok"


# ---------------------------------------------------------------- readers

@test
async def add_reader_is_level_triggered(loop):
    a, b = local_pair()
    calls = []
    b.send(b"abc")
    two = loop.create_future()

    def cb():
        calls.append(1)
        if len(calls) == 2:
            loop.remove_reader(a)
            two.set_result(None)

    loop.add_reader(a, cb)
    await asyncio.wait_for(two, 5)
    assert a.recv(10) == b"abc"
    a.close()
    b.close()


@test
@known(uvloop="uvloop's remove_writer() returns True for an fd without a writer")
async def add_writer_and_remove(loop):
    a, b = local_pair()
    fut = loop.create_future()
    loop.add_writer(a, lambda: (loop.remove_writer(a), fut.set_result("w")))
    assert await fut == "w"
    assert loop.remove_writer(a) is False
    a.close()
    b.close()


@test
async def reader_on_reused_fd_number(loop):
    """An fd closed behind the loop's back and reused must still work."""
    for _ in range(3):
        a, b = local_pair()
        fut = loop.create_future()
        loop.add_reader(a, lambda: fut.done() or fut.set_result(a.recv(10)))
        b.send(b"hi")
        assert await asyncio.wait_for(fut, 5) == b"hi"
        loop.remove_reader(a)
        a.close()
        b.close()


@test
async def sock_calls(loop):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    lsock.setblocking(False)
    c = socket.socket()
    c.setblocking(False)
    acc = asyncio.ensure_future(loop.sock_accept(lsock))
    await loop.sock_connect(c, lsock.getsockname())
    s, _ = await acc
    s.setblocking(False)
    await loop.sock_sendall(c, b"x" * 100000)
    got = b""
    while len(got) < 100000:
        got += await loop.sock_recv(s, 65536)
    assert got == b"x" * 100000
    for x in (c, s, lsock):
        x.close()


# ---------------------------------------------------------------- transports

@test
@known(uvloop="uvloop's transports are not asyncio.Transport instances")
async def transports_are_asyncio_transports(loop):
    srv, port = await echo_server(loop)
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    assert isinstance(tr, asyncio.Transport), type(tr).__mro__
    tr.close()
    await pr.lost
    srv.close()
    await srv.wait_closed()


@test
async def echo_and_extra_info(loop):
    srv, port = await echo_server(loop)
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    assert tr.get_extra_info("peername") == ("127.0.0.1", port)
    assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
    assert tr.get_extra_info("socket").fileno() >= 0
    assert tr.get_extra_info("nothing", 42) == 42
    tr.write(b"hello ")
    tr.writelines([b"wor", bytearray(b"ld"), memoryview(b"!")])
    while len(pr.data) < 12:
        await asyncio.sleep(0.001)
    assert bytes(pr.data) == b"hello world!"
    tr.close()
    assert await pr.lost is None
    assert pr.events == ["made", "lost"]
    srv.close()
    await srv.wait_closed()


@test
async def write_in_connection_made_and_eof(loop):
    class Hello(asyncio.Protocol):
        def connection_made(self, tr):
            tr.write(b"greeting")
            tr.write_eof()

    srv = await loop.create_server(Hello, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    await asyncio.wait_for(pr.eof, 5)
    assert bytes(pr.data) == b"greeting"
    await pr.lost
    assert pr.events == ["made", "eof", "lost"]
    srv.close()
    await srv.wait_closed()


@test
async def flow_control_pauses_and_resumes_writing(loop):
    events = []
    done = loop.create_future()

    class Writer(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr
            tr.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
            assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            tr.write(b"y" * (4 << 20))
            events.append(("size", tr.get_write_buffer_size() > 0))

        def pause_writing(self):
            events.append("pause")

        def resume_writing(self):
            events.append("resume")
            self.tr.close()

        def connection_lost(self, exc):
            done.set_result(exc)

    srv = await loop.create_server(Writer, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    total = 0
    while True:
        chunk = await r.read(1 << 16)
        if not chunk:
            break
        total += len(chunk)
    assert total == 4 << 20, total
    assert await done is None
    assert events[:3] == [("size", True), "pause", "resume"] or \
        events[:3] == ["pause", ("size", True), "resume"], events
    w.close()
    await w.wait_closed()
    srv.close()
    await srv.wait_closed()


@test
async def buffered_protocol_small_buffer(loop):
    class Buf(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(7)
            self.data = bytearray()
            self.done = loop.create_future()

        def get_buffer(self, hint):
            return self.buf

        def buffer_updated(self, n):
            self.data += self.buf[:n]

        def eof_received(self):
            self.done.set_result(bytes(self.data))

    payload = bytes(range(256)) * 400

    class Send(asyncio.Protocol):
        def connection_made(self, tr):
            tr.write(payload)
            tr.write_eof()

    srv = await loop.create_server(Send, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    tr, pr = await loop.create_connection(Buf, "127.0.0.1", port)
    assert await asyncio.wait_for(pr.done, 10) == payload
    tr.close()
    srv.close()
    await srv.wait_closed()


@test
async def pause_and_resume_reading(loop):
    srv, port = await echo_server(loop)
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    tr.pause_reading()
    assert not tr.is_reading()
    tr.write(b"ping")
    await asyncio.sleep(0.05)
    assert bytes(pr.data) == b""
    tr.resume_reading()
    assert tr.is_reading()
    while len(pr.data) < 4:
        await asyncio.sleep(0.001)
    assert bytes(pr.data) == b"ping"
    tr.close()
    await pr.lost
    srv.close()
    await srv.wait_closed()


@test
async def abort_drops_buffer_and_calls_connection_lost(loop):
    srv, port = await echo_server(loop)
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    tr.write(b"z" * (8 << 20))
    tr.abort()
    assert tr.is_closing()
    assert await pr.lost is None
    assert tr.get_write_buffer_size() == 0
    srv.close()
    await srv.wait_closed()


@test
async def close_flushes_before_connection_lost(loop):
    got = loop.create_future()

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.n = 0

        def data_received(self, d):
            self.n += len(d)

        def eof_received(self):
            pass

        def connection_lost(self, exc):
            got.set_result(self.n)

    srv = await loop.create_server(Sink, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    tr.write(b"q" * (2 << 20))
    tr.close()
    assert await pr.lost is None
    assert await asyncio.wait_for(got, 10) == 2 << 20
    srv.close()
    await srv.wait_closed()


@test
async def peer_reset_reports_connection_lost(loop):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1",
                                          lsock.getsockname()[1])
    s, _ = lsock.accept()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    exc = await asyncio.wait_for(pr.lost, 5)
    assert exc is None or isinstance(exc, ConnectionError), exc
    lsock.close()


@test
@known(uvloop="uvloop raises RuntimeError on write() after connection_lost")
async def write_after_close_is_ignored(loop):
    srv, port = await echo_server(loop)
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    tr.close()
    await pr.lost
    tr.write(b"late")  # asyncio ignores it (and logs after several)
    try:
        tr.write("str")
        raise AssertionError("write(str) must raise")
    except TypeError:
        pass
    srv.close()
    await srv.wait_closed()


# ---------------------------------------------------------------- servers and streams

@test
async def server_many_clients_and_close(loop):
    srv, port = await echo_server(loop)

    async def client(i):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        msg = f"client {i}\n".encode()
        w.write(msg)
        assert await r.readline() == msg
        w.close()
        await w.wait_closed()

    await asyncio.gather(*(client(i) for i in range(20)))
    srv.close()
    await srv.wait_closed()
    assert not srv.is_serving()


@test
@known(uvloop="uvloop leaves the connection open when the protocol factory raises")
async def failing_protocol_factory_drops_only_that_connection(loop):
    calls = [0]

    def factory():
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("no protocol for the first one")
        return Echo()

    srv = await loop.create_server(factory, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    assert await r1.read() == b""  # closed by the server
    w1.close()
    await w1.wait_closed()
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    w2.write(b"ok")
    assert await r2.readexactly(2) == b"ok"
    w2.close()
    await w2.wait_closed()
    srv.close()
    await srv.wait_closed()


@test
async def burst_of_connections_in_one_pass(loop):
    srv, port = await echo_server(loop)
    socks = []
    for _ in range(50):
        s = socket.socket()
        s.connect(("127.0.0.1", port))  # blocking: all queue in the backlog
        socks.append(s)
    await asyncio.sleep(0)

    async def check(s):
        s.setblocking(False)
        await loop.sock_sendall(s, b"ping")
        got = b""
        while len(got) < 4:
            got += await loop.sock_recv(s, 4)
        assert got == b"ping"
        s.close()

    await asyncio.gather(*(check(s) for s in socks))
    srv.close()
    await srv.wait_closed()


@test
async def add_reader_on_a_transport_fd_is_refused(loop):
    srv, port = await echo_server(loop)
    tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
    fd = tr.get_extra_info("socket").fileno()
    try:
        loop.add_reader(fd, lambda: None)
        raise AssertionError("add_reader() on a transport's fd must raise")
    except RuntimeError:
        pass
    tr.close()
    await pr.lost
    srv.close()
    await srv.wait_closed()


@test
@known(uvloop="uvloop's remove_reader() returns True for an fd without a reader")
async def cancelled_sock_recv_leaves_no_reader(loop):
    a, b = local_pair()
    t = asyncio.ensure_future(loop.sock_recv(a, 10))
    await asyncio.sleep(0.01)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0)
    assert loop.remove_reader(a) is False
    b.send(b"x")
    assert await loop.sock_recv(a, 10) == b"x"
    a.close()
    b.close()


@test
async def unix_socket_streams(loop):
    path = tempfile.mktemp(prefix="corio-", suffix=".sock")

    async def handle(r, w):
        w.write((await r.readexactly(5)).upper())
        await w.drain()
        w.close()

    srv = await asyncio.start_unix_server(handle, path)
    r, w = await asyncio.open_unix_connection(path)
    w.write(b"hello")
    assert await r.read() == b"HELLO"
    w.close()
    await w.wait_closed()
    srv.close()
    await srv.wait_closed()
    os.unlink(path)


@test
async def udp_echo(loop):
    class Srv(asyncio.DatagramProtocol):
        def connection_made(self, tr):
            self.tr = tr

        def datagram_received(self, data, addr):
            self.tr.sendto(data[::-1], addr)

    class Cli(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = loop.create_future()

        def datagram_received(self, data, addr):
            self.got.set_result(data)

    st, _ = await loop.create_datagram_endpoint(Srv, local_addr=("127.0.0.1", 0))
    ct, cp = await loop.create_datagram_endpoint(Cli, remote_addr=st.get_extra_info("sockname"))
    ct.sendto(b"abc")
    assert await asyncio.wait_for(cp.got, 5) == b"cba"
    ct.close()
    st.close()
    await asyncio.sleep(0)


@test
async def tls_echo(loop):
    cert = os.path.join(os.path.dirname(os.__file__), "test", "keycert.pem")
    if not os.path.exists(cert):
        cert = os.path.join(os.path.dirname(os.__file__), "test", "certdata", "keycert.pem")
    if not os.path.exists(cert):
        return "skip: no test certificate"
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE

    async def handle(r, w):
        w.write(await r.readline())
        await w.drain()
        w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=sctx)
    port = srv.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=cctx)
    w.write(b"secret line\n")
    assert await r.readline() == b"secret line\n"
    w.close()
    await w.wait_closed()
    srv.close()
    await srv.wait_closed()


@test
@known(uvloop="uvloop has no loop.sendfile()")
async def sendfile_on_a_transport(loop):
    data = os.urandom(300000)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        f.seek(0)
        got = loop.create_future()

        class Sink(asyncio.Protocol):
            def __init__(self):
                self.b = bytearray()

            def data_received(self, d):
                self.b += d
                if len(self.b) == len(data):
                    got.set_result(bytes(self.b))

        srv = await loop.create_server(Sink, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        tr, pr = await loop.create_connection(lambda: Collect(loop), "127.0.0.1", port)
        n = await loop.sendfile(tr, f)
        assert n == len(data)
        assert await asyncio.wait_for(got, 10) == data
        tr.close()
        await pr.lost
        srv.close()
        await srv.wait_closed()


@test
async def subprocess_output(loop):
    p = await asyncio.create_subprocess_exec(sys.executable, "-c", "print('from child')",
                                             stdout=subprocess.PIPE)
    out, _ = await p.communicate()
    assert out.strip() == b"from child"
    assert p.returncode == 0


# ---------------------------------------------------------------- cancellation, context

@test
async def cancel_a_reading_task(loop):
    srv, port = await echo_server(loop)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    t = asyncio.ensure_future(r.read(10))
    await asyncio.sleep(0.01)
    t.cancel()
    try:
        await t
        raise AssertionError("not cancelled")
    except asyncio.CancelledError:
        pass
    w.write(b"still works")
    assert await r.readexactly(11) == b"still works"
    w.close()
    await w.wait_closed()
    srv.close()
    await srv.wait_closed()


@test
async def wait_for_and_timeout(loop):
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.02)
        raise AssertionError("no timeout")
    except asyncio.TimeoutError:
        pass
    try:
        async with asyncio.timeout(0.02):
            await asyncio.sleep(10)
        raise AssertionError("no timeout")
    except TimeoutError:
        pass


var = contextvars.ContextVar("var", default="unset")


@test
async def contextvars_follow_callbacks(loop):
    out = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    var.set("task")
    loop.call_soon(lambda: out.append(var.get()))
    loop.call_soon(lambda: out.append(var.get()), context=ctx)
    loop.call_later(0, lambda: out.append(var.get()), context=ctx)
    await asyncio.sleep(0.01)
    assert out == ["task", "in ctx", "in ctx"], out


@test
async def contextvars_in_protocol_callbacks(loop):
    seen = loop.create_future()

    class P(asyncio.Protocol):
        def data_received(self, data):
            if not seen.done():
                seen.set_result(var.get())

    var.set("creator")
    srv, port = await echo_server(loop)
    tr, pr = await loop.create_connection(P, "127.0.0.1", port)
    var.set("changed later")
    tr.write(b"x")
    assert await asyncio.wait_for(seen, 5) == "creator"
    tr.close()
    srv.close()
    await srv.wait_closed()


@test
async def exception_in_callback_goes_to_handler(loop):
    got = loop.create_future()
    loop.set_exception_handler(lambda lp, ctx: got.done() or got.set_result(ctx))

    def boom():
        raise ZeroDivisionError("boom")

    loop.call_soon(boom)
    ctx = await got
    loop.set_exception_handler(None)
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert "Exception in callback" in ctx["message"]
    assert "handle" in ctx


@test
async def signal_handlers(loop):
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, lambda: got.set_result("usr1"))
    os.kill(os.getpid(), signal.SIGUSR1)
    assert await asyncio.wait_for(got, 5) == "usr1"
    assert loop.remove_signal_handler(signal.SIGUSR1)


@test
async def debug_mode_reports_slow_callbacks(loop):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    try:
        fut = loop.create_future()
        loop.call_soon(lambda: (time.sleep(0.03), fut.set_result(None)))
        await fut
        await asyncio.sleep(0)
    finally:
        loop.set_debug(False)
        logger.removeHandler(handler)
    assert any("took" in r.getMessage() for r in records), [r.getMessage() for r in records]


@test
async def handles_are_released(loop):
    class Obj:
        def cb(self):
            pass

    refs = []
    for i in range(200):
        o = Obj()
        refs.append(weakref.ref(o))
        h = loop.call_later(10 + i, o.cb)
        h.cancel()
        del o, h
    for i in range(200):
        o = Obj()
        refs.append(weakref.ref(o))
        loop.call_soon(o.cb)
        del o
    await asyncio.sleep(0.01)
    gc.collect()
    alive = sum(1 for r in refs if r() is not None)
    assert alive == 0, alive


# ---------------------------------------------------------------- runner

def run_test(fn, factory):
    gc.collect()  # what an earlier failed test left behind
    before = fds()
    loop = factory()
    result = None
    try:
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(asyncio.wait_for(fn(loop), 20))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    del loop
    gc.collect()
    after = fds()
    if after != before:
        raise AssertionError(f"leaked {after - before} fd(s)")
    return result


FACTORY = None  # the loop factory of the run, for tests that make their own loop


def factory_of(name):
    if name == "corio":
        import corio
        asyncio.set_event_loop_policy(corio.EventLoopPolicy())
        return corio.new_event_loop
    if name == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return uvloop.new_event_loop
    return asyncio.SelectorEventLoop


def run_loop(name, pattern):
    import traceback
    global FACTORY
    factory = FACTORY = factory_of(name)
    # A first loop may set up process-wide state (uvloop opens fds once).
    warm = factory()
    warm.run_until_complete(asyncio.sleep(0))
    warm.close()
    passed = failed = xfail = xpass = skipped = 0
    for fn in TESTS:
        if pattern and pattern not in fn.__name__:
            continue
        reason = KNOWN.get(fn.__name__, {}).get(name)
        try:
            r = run_test(fn, factory)
            ok, detail = True, ""
            if isinstance(r, str) and r.startswith("skip"):
                skipped += 1
                print(f"  skip   {fn.__name__}: {r}")
                continue
        except Exception as e:
            ok, detail = False, "".join(traceback.format_exception(e))
        if reason:
            if ok:  # not strict: what uvloop gets wrong may depend on timing
                xpass += 1
                print(f"  xpass  {fn.__name__} (listed: {reason})")
            else:
                xfail += 1
                print(f"  xfail  {fn.__name__}: {reason}")
        elif ok:
            passed += 1
            print(f"  ok     {fn.__name__}")
        else:
            failed += 1
            print(f"  FAIL   {fn.__name__}\n{detail}")
    summary = f"{name}: {passed + xpass} passed, {failed} failed, {skipped} skipped"
    if xfail:
        summary += f" ({xfail} known failures of {name})"
    print(summary, flush=True)
    return 0 if failed == 0 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", nargs="*", default=["asyncio", "uvloop", "corio"])
    ap.add_argument("-k", default="")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return run_loop(args.one, args.k)
    rc = 0
    lines = []
    for name in args.loops:
        print(f"== {name}", flush=True)
        p = subprocess.run([sys.executable, __file__, "--one", name, "-k", args.k],
                           stdout=subprocess.PIPE, text=True, timeout=600)
        sys.stdout.write(p.stdout)
        last = [l for l in p.stdout.splitlines() if l.startswith(name + ":")]
        lines.append(last[-1] if last else f"{name}: crashed (status {p.returncode})")
        rc |= p.returncode != 0
    print("\n" + "\n".join(lines))
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
