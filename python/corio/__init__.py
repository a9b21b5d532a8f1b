"""corio: an asyncio event loop written in C on corio's callback level.

Existing asyncio programs run on it by changing the loop factory:

    asyncio.Runner(loop_factory=corio.new_event_loop)            # 3.11
    asyncio.run(main(), loop_factory=corio.new_event_loop)       # 3.12+

EventLoop is asyncio's own Unix selector loop with its per-callback and
per-packet parts (the ready queue, timers, add_reader/add_writer, _run_once,
the stream transport) replaced by C; everything else (create_connection,
create_server, TLS, UDP, pipes, subprocesses, signals, sendfile, executors,
the exception handler, debug mode) is asyncio's own code.
"""
import asyncio
import selectors
import weakref
from asyncio import base_events, constants, sslproto, unix_events
from asyncio.log import logger

from . import _corio

__all__ = ("EventLoop", "EventLoopPolicy", "new_event_loop", "install", "run")

SocketTransport = _corio.SocketTransport
SocketTransport._start_tls_compatible = True
SocketTransport._sendfile_compatible = constants._SendfileMode.TRY_NATIVE
SocketTransport.max_size = 256 * 1024


class _Selector(selectors.BaseSelector):
    """Stands where asyncio's selector was: corio polls, so this only
    answers get_key() (for code that inspects it) from corio's records."""

    def __init__(self, loop):
        self._loop = weakref.ref(loop)

    def register(self, fileobj, events, data=None):
        raise RuntimeError("corio: use loop.add_reader()/add_writer()")

    def unregister(self, fileobj):
        raise RuntimeError("corio: use loop.remove_reader()/remove_writer()")

    def select(self, timeout=None):
        raise RuntimeError("corio: the loop polls by itself")

    def get_key(self, fileobj):
        fd = selectors._fileobj_to_fd(fileobj)
        loop = self._loop()
        key = loop._corio_fd_key(fd) if loop is not None and not loop.is_closed() else None
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        events, data = key
        return selectors.SelectorKey(fileobj, fd, events, data)

    def get_map(self):
        return {}

    def close(self):
        pass


class EventLoop(_corio.LoopCore, unix_events.SelectorEventLoop):
    """asyncio's Unix selector event loop, run by corio."""

    def __init__(self):
        super().__init__(_Selector(self))

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        return SocketTransport(self, sock, protocol, waiter, extra, server)

    def _make_ssl_transport(
            self, rawsock, protocol, sslcontext, waiter=None,
            *, server_side=False, server_hostname=None,
            extra=None, server=None,
            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT):
        ssl_protocol = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        SocketTransport(self, rawsock, ssl_protocol, None, extra, server)
        return ssl_protocol._app_transport

    def close(self):
        try:
            super().close()
        finally:
            if self.is_closed():
                self._corio_close()

    def _run_handle_debug(self, handle):
        # asyncio's debug-mode step of _run_once: slow callbacks are timed
        # around handle._run() alone, as asyncio does.
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                logger.warning("Executing %s took %.3f seconds",
                               base_events._format_handle(handle), dt)
        finally:
            self._current_handle = None


class EventLoopPolicy(unix_events.DefaultEventLoopPolicy):
    """asyncio's Unix policy (child watchers included) making corio loops."""
    _loop_factory = EventLoop


def new_event_loop():
    """A new corio event loop: pass it as a loop_factory."""
    return EventLoop()


def install():
    """Makes corio the loop of asyncio.run() and asyncio.new_event_loop()."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """asyncio.run(main) on a corio loop."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
