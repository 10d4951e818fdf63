"""The accept loop: connections, worker threads or processes, and shutdown.

One loop accepts connections and watches every idle one with a single poller
(``epoll`` on Linux, :mod:`selectors` elsewhere), so an idle keep-alive
connection costs a file descriptor and no thread. When connections have bytes
to read, the loop's thread serves them, one after the other: it parses with
:mod:`.http11`, runs the application through :mod:`.wsgi`, and gives the
connection back to the poller once it waits for the next request. Without
threads, that thread is the one that called :meth:`Server.serve_forever`;
with ``threaded=True`` it is a thread of the pool, and :mod:`._relay` hands the
loop to another one whenever a request holds it, so that long requests run
side by side. ``processes=N`` forks N such loops that share the listening
sockets. Timeouts close clients that are slow to send their headers and
keep-alive connections that stay idle.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import typing as t
from collections import deque

from .._compat import (
    AF_UNIX,
    MSG_DONTWAIT,
    block_stop_signals,
    fork_process,
    kill_now,
    reap_child,
    restore_signal_mask,
    set_io_timeout,
)
from .._log import defer_request_log, flush_request_log, log_error
from . import http11
from ._connection import (
    RECV_SIZE,
    Client,
    with_data,
)
from ._options import check_concurrency
from ._poller import Poller
from ._pool import BASE_THREADS, STARVED, Pool
from ._relay import LEAD, Lead, Relay
from .http11 import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    RemoteProtocolError,
)
from .tls import PLAIN_HTTP_MESSAGE, handshake_failure
from .wsgi import (
    TAKE_SOCKET_KEY,
    Exchange,
    Input,
    address_environ,
    base_environ,
    build_environ,
)

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger("citus")

#: Seconds a client has to send a complete request head.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection stays open.
DEFAULT_KEEPALIVE_TIMEOUT = 5.0
#: Seconds a blocked read of a request body (or a blocked write) may take.
DEFAULT_IO_TIMEOUT = 30.0
#: Seconds in-flight requests get to finish after :meth:`Server.shutdown`.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: Most worker threads at once with ``threaded=True``.
DEFAULT_MAX_THREADS = 256
#: Seconds a connection closed with request bytes unread reads on (and drops)
#: what the client still sends, so that the client reads its answer rather
#: than a reset (a lingering close, as Apache and nginx make).
LINGER_TIME = 5.0

#: How many loops of this process accept on each listening socket (by file
#: descriptor): the last one to stop makes it blocking again.
_accepting: dict[int, int] = {}
_accepting_lock = threading.Lock()

#: Seconds to stop accepting after running out of file descriptors.
_ACCEPT_PAUSE = 0.5
#: Seconds the loop may go without polling before the timers that ran out
#: meanwhile are not held against their connections (see Server._sweep).
_STALL = 0.25
#: Reported by the poller when connections handed over by another process
#: wait to be adopted (never a real file descriptor).
_ADOPTED = -1


class Server:
    """Serves a WSGI application on already-bound listening sockets.

    :param sockets: listening sockets (TCP or Unix), already bound; they stay
        open after :meth:`shutdown` and are closed by :meth:`server_close`.
    :param app: the WSGI application.
    :param threaded: serve requests concurrently, on threads (see :mod:`._relay`).
    :param processes: fork this many serving processes (POSIX only).
    :param ssl_context: a server-side context to serve HTTPS.
    :param passthrough_errors: let the application's exceptions propagate
        instead of answering 500.
    :param header_timeout: seconds a client has to send a request head.
    :param keepalive_timeout: seconds an idle keep-alive connection stays open.
    :param io_timeout: seconds a blocked body read or response write may take.
    :param shutdown_timeout: seconds in-flight requests get after
        :meth:`shutdown`.
    :param max_threads: most threads with ``threaded=True``.

    Under the reloader, connections move from one serving process to the
    next: :meth:`adopt` takes the previous process's, and :attr:`hand_off`
    passes this one's on when it stops.
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        app: WSGIApplication,
        *,
        threaded: bool = False,
        processes: int = 1,
        ssl_context: ssl.SSLContext | None = None,
        passthrough_errors: bool = False,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
        io_timeout: float = DEFAULT_IO_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        max_threads: int = DEFAULT_MAX_THREADS,
    ) -> None:
        check_concurrency(threaded, processes)
        if not sockets:
            raise ValueError("Server() needs at least one listening socket.")
        self.sockets = sockets
        self.app = app
        self.threaded = threaded
        self.processes = processes
        self.ssl_context = ssl_context
        self.passthrough_errors = passthrough_errors
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.io_timeout = io_timeout
        self.shutdown_timeout = shutdown_timeout
        self.max_threads = max_threads
        self._stopping = False
        self._poller: Poller | None = None
        self._loop_thread: int | None = None
        self._loop_done = threading.Event()
        self._loop_done.set()
        #: Set by the thread that runs the loop when it leaves it on a stop.
        self._loop_ended = threading.Event()
        #: Ready file descriptors that the loop has yet to serve (it polls
        #: again once they are served).
        self._batch: deque[int] = deque()
        self._listeners: dict[int, socket.socket] = {}
        self._relay: Relay | None = None
        self._clients: dict[int, Client] = {}
        self._pool: Pool[Client | Lead] | None = None
        self._children: list[int] = []
        self._local_addresses: dict[socket.socket, t.Any] = {}
        self._accept_paused_until = 0.0
        #: The last stretch (start, end) in which the loop did not poll for
        #: over _STALL seconds: without threads, a long request holds it.
        self._stall = (0.0, 0.0)
        self._scheme = "https" if ssl_context is not None else "http"
        self._multiprocess = processes > 1
        #: When set (by ``run_simple`` in a reloader child), a stop hands
        #: kept-alive connections that wait for their next request to this
        #: function instead of closing them: it passes them on to the process
        #: that serves next, and returns False when it could not (they are
        #: then closed). TLS connections are never handed over.
        self.hand_off: t.Callable[[list[socket.socket]], bool] | None = None
        self._adopted: list[socket.socket] = []
        self._adopt_lock = threading.Lock()
        self._adopt_open = True

    # -- addresses ----------------------------------------------------------

    @property
    def server_address(self) -> t.Any:
        """The first socket's address: ``(host, port)`` or a Unix path."""
        return self.sockets[0].getsockname()

    @property
    def port(self) -> int | None:
        """The first TCP socket's port (the real one after binding port 0)."""
        for sock in self.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
        return None

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` is called (or Ctrl+C).

        A :meth:`shutdown` that came before this call makes it return at once.
        """
        try:
            if self.processes > 1:
                self._serve_processes()
            else:
                self._serve_loop()
        finally:
            self._stopping = False  # a later serve_forever() serves again

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever`: from any thread or a signal handler.

        Stops accepting at once and returns within a second; requests in
        flight get ``shutdown_timeout`` seconds to finish. The listening
        sockets stay open (see :meth:`server_close`).
        """
        self._stopping = True
        # Requests in flight (this one too, when the application asks for
        # the stop) announce that their answer is the connection's last.
        for client in list(self._clients.values()):
            if client.busy:
                self._last_answer(client)
        poller = self._poller
        if poller is not None:
            poller.wake()
        if self._loop_thread is not None and self._loop_thread != threading.get_ident():
            self._loop_done.wait(1.0)

    def server_close(self) -> None:
        """Close the listening sockets."""
        try:
            from . import sockets as sockets_module

            release = getattr(sockets_module, "release_sockets", None)
        except ImportError:  # pragma: no cover
            release = None
        if release is not None:
            release(self.sockets)
        else:
            for sock in self.sockets:
                sock.close()

    def adopt(self, socks: list[socket.socket]) -> None:
        """Serve connections that another process accepted, from any thread.

        The previous reloader child hands over its kept-alive connections
        when it stops; they are watched like accepted ones, and the requests
        that wait on them are read here. Once this server is stopping they are
        handed on again (see :attr:`hand_off`), or closed.
        """
        with self._adopt_lock:
            if self._adopt_open:
                self._adopted.extend(socks)
                poller = self._poller
                if poller is not None:
                    poller.push_ready(_ADOPTED)
                return
        self._pass_socks_on(socks)

    # -- processes ----------------------------------------------------------

    def _serve_processes(self) -> None:
        self._loop_thread = threading.get_ident()
        self._loop_done.clear()
        poller = self._poller = Poller()
        children: dict[int, bool] = {}
        try:
            while not self._stopping:
                while len(children) < self.processes and not self._stopping:
                    # Ctrl+C reaches the workers too: hold it back until the
                    # worker has its own handlers and the parent knows its pid.
                    mask = block_stop_signals()
                    try:
                        pid = self._fork_child(mask)
                        children[pid] = True
                    finally:
                        restore_signal_mask(mask)
                poller.poll(0.2, set())
                for pid in list(children):
                    try:
                        status = reap_child(pid)
                    except ChildProcessError:
                        status = 0
                    if status is not None:
                        del children[pid]
                        if not self._stopping:
                            logger.error(
                                "Worker process %d exited (status %d); starting"
                                " another.",
                                pid,
                                status,
                            )
        finally:
            self._loop_done.set()
            self._stop_children(children)
            self._poller = None
            poller.close()
            if os.environ.get("CITUS_RUN_MAIN") != "true":
                for sock in self.sockets:
                    try:
                        sock.setblocking(True)
                    except OSError:
                        pass

    def _fork_child(self, mask: object) -> int:
        """Fork a worker (SIGINT and SIGTERM held back: ``mask`` undoes it)."""
        pid = fork_process()
        if pid:
            return pid
        # In the child: serve until told to stop, then leave without cleanup
        # that belongs to the parent.
        status = 0
        try:
            if self._poller is not None:
                self._poller.close()
                self._poller = None
            self._loop_done = threading.Event()
            self._loop_done.set()
            signal.signal(signal.SIGTERM, lambda *args: self.shutdown())
            signal.signal(signal.SIGINT, lambda *args: self.shutdown())
            restore_signal_mask(mask)  # a Ctrl+C held back now stops serving
            self.processes = 1
            self._serve_loop()
        except KeyboardInterrupt:
            pass  # stopping anyway
        except BaseException:
            logger.exception("Worker process %d failed:", os.getpid())
            status = 1
        finally:
            os._exit(status)

    def _stop_children(self, children: dict[int, bool]) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.shutdown_timeout + 1
        remaining = set(children)
        while remaining and time.monotonic() < deadline:
            for pid in list(remaining):
                try:
                    done = reap_child(pid) is not None
                except ChildProcessError:
                    done = True
                if done:
                    remaining.discard(pid)
            if remaining:
                time.sleep(0.02)
        for pid in remaining:
            try:
                kill_now(pid)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass

    # -- the loop -----------------------------------------------------------

    def _serve_loop(self) -> None:
        self._loop_thread = threading.get_ident()
        self._loop_done.clear()
        self._loop_ended.clear()
        poller = self._poller = Poller()
        listeners = self._listeners = {}
        relay = None
        if self.threaded or self.ssl_context is not None:
            self._pool = Pool[Client | Lead](
                self._work,
                BASE_THREADS,
                self.max_threads if self.threaded else BASE_THREADS,
            )
        try:
            self._local_addresses = {}
            self._accept_paused_until = 0.0
            with _accepting_lock:
                for sock in self.sockets:
                    fd = sock.fileno()
                    _accepting[fd] = _accepting.get(fd, 0) + 1
                    listeners[fd] = sock
            for sock in self.sockets:
                sock.setblocking(False)
                poller.add_listener(sock.fileno())
                local = sock.getsockname()
                if sock.family == AF_UNIX or local[0] not in ("0.0.0.0", "::"):
                    # Every connection gets the same local address.
                    self._local_addresses[sock] = local
            if self._stopping:
                return
            with self._adopt_lock:
                self._adopt_open = True
            self._take_adopted()
            # Request-log lines wait while more ready connections do: one
            # write per round of the loop.
            batch = self._batch
            defer_request_log(lambda: bool(batch))
            if self.threaded:
                assert self._pool is not None
                relay = self._relay = Relay(self._pool)
                relay.start()  # a thread of the pool runs the loop
                self._loop_ended.wait()
            else:
                self._lead()
        finally:
            defer_request_log(None)
            self._stopping = True  # also after Ctrl+C: in-flight work winds up
            if relay is not None:
                poller.wake()
                # The thread that runs the loop sees the stop within a request
                # (or the relay gives the loop to one that does).
                self._loop_ended.wait(1.0)
                relay.stop()  # no thread runs the loop from here on
                self._relay = None
            flush_request_log()
            for fd in listeners:
                poller.remove(fd)
            self._loop_done.set()
            # Ctrl+C (or another error) leaves less time than shutdown().
            self._drain(quick=sys.exc_info()[0] is not None)
            self._batch.clear()
            self._poller = None
            poller.close()
            # In a reloader child the listening sockets' flags are shared with
            # the next child, already accepting in non-blocking mode: leave them.
            # Forked workers share them with each other, and another server of
            # this process may accept on them still (as a reload in one
            # process does): a loop that stopped first would leave the others
            # blocked in accept().
            restore = (
                os.environ.get("CITUS_RUN_MAIN") != "true" and not self._multiprocess
            )
            with _accepting_lock:
                for fd, sock in listeners.items():
                    left = _accepting.pop(fd, 1) - 1
                    if left:
                        _accepting[fd] = left
                    elif restore:
                        try:
                            sock.setblocking(True)
                        except OSError:
                            pass

    def _work(self, item: Client | Lead) -> None:
        """A worker thread's work: run the loop, or serve a connection."""
        if item is LEAD:
            self._lead()
        else:
            assert isinstance(item, Client)
            self._handle_ready(item)

    def _lead(self) -> None:
        """Run the loop on this thread: poll, accept, and serve what is ready.

        Returns when the server stops, or, with ``threaded=True``, when the
        relay gave the loop to another thread while this one served a request
        (that request is finished first).
        """
        poller = self._poller
        if poller is None:
            return  # stopped before this thread's turn came
        relay = self._relay
        turn = 0
        if relay is not None:
            if relay.closed:
                return  # the server stopped before this thread's turn came
            turn = relay.turn
        poller.own()
        batch = self._batch
        listeners = self._listeners
        listener_fds = set(listeners)
        clients = self._clients
        pool = self._pool
        polled = time.monotonic()
        next_sweep = polled + 0.25
        done = stopped = False
        try:
            while True:
                if not batch:
                    if self._stopping:
                        stopped = True
                        break
                    now = time.monotonic()
                    if now - polled > _STALL:
                        self._stall = (polled, now)
                    flush_request_log()
                    timeout = 0.25
                    if pool is not None and pool.waiting:
                        # A handshake waits for a free thread: add one if it
                        # waits too long.
                        timeout = STARVED
                        pool.check(time.monotonic())
                    try:
                        batch.extend(poller.poll(timeout, listener_fds))
                    except (OSError, ValueError):
                        if self._stopping:  # the poller closed under us
                            stopped = True
                            break
                        raise
                    now = polled = time.monotonic()
                    if now >= next_sweep:
                        next_sweep = now + 0.25
                        self._sweep(now)
                        if (
                            self._accept_paused_until
                            and now >= self._accept_paused_until
                        ):
                            self._accept_paused_until = 0.0
                            for fd in listeners:
                                poller.add_listener(fd)
                    continue
                fd = batch.popleft()
                if fd in listeners:
                    self._accept(listeners[fd])
                    continue
                client = clients.get(fd)
                if client is None:
                    if fd == _ADOPTED:
                        self._take_adopted()
                    continue
                client.busy = True
                if pool is not None and client.tls_pending:
                    pool.submit(client)  # a handshake may take its time
                    continue
                if relay is None:
                    self._handle_ready(client)
                    continue
                relay.enter()
                try:
                    self._handle_ready(client)
                except Exception:
                    # passthrough_errors (or a bug): the loop goes on.
                    logger.exception("Error in a worker thread:")
                if not relay.leave(turn):
                    break  # another thread runs the loop now
            done = True
        finally:
            if stopped or relay is None:
                self._loop_ended.set()
            elif not done:
                relay.hand_over(turn)  # leaving on an error: the loop goes on

    def _accept(self, listener: socket.socket) -> None:
        poller = self._poller
        assert poller is not None
        for _ in range(64):
            try:
                # The listening socket's blocking flag is shared with every
                # process that holds it (the reloader's supervisor and child,
                # forked workers): if one of them made it blocking again, an
                # accept() whose connection another process took would hang
                # this loop. Re-assert it before each accept (one cheap call;
                # requests may be served between two accepts).
                listener.setblocking(False)
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left: another process may have taken it
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS):
                    # Out of file descriptors: stop watching the listeners for
                    # a moment rather than spin (and log) on them.
                    log_error(
                        f"Cannot accept a connection: {error}. Pausing for"
                        f" {_ACCEPT_PAUSE:g} s; raise the open-file limit"
                        " (ulimit -n) if this happens often."
                    )
                    self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE
                    for sock in self.sockets:
                        poller.remove(sock.fileno())
                return
            family = sock.family
            if family != AF_UNIX:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            try:
                set_io_timeout(sock, self.io_timeout)
            except OSError:  # the client is gone already
                sock.close()
                continue
            fd = sock.fileno()
            client = Client(sock, fd)
            client.io_timeout = self.io_timeout
            local = self._local_addresses.get(listener)
            if local is None:
                try:
                    local = sock.getsockname()
                except OSError:
                    sock.close()
                    continue
            addresses = address_environ(local, peer, family == AF_UNIX)
            client.client = addresses["REMOTE_ADDR"]
            client.base = base_environ(
                addresses,
                self._scheme,
                self.threaded,
                self._multiprocess,
            )
            client.deadline = time.monotonic() + self.header_timeout
            self._clients[fd] = client
            if self.ssl_context is not None:
                client.tls_pending = True
            elif MSG_DONTWAIT:
                # The request usually follows the connection at once: read it
                # next rather than after a round through the poller (which
                # only learns about the connection if it has to wait).
                self._batch.append(fd)
                continue
            client.registered = True
            poller.add_conn(fd)

    def _take_adopted(self) -> None:
        """Watch the connections given to :meth:`adopt` (on the loop's thread)."""
        with self._adopt_lock:
            socks, self._adopted = self._adopted, []
        poller = self._poller
        assert poller is not None
        deadline = time.monotonic() + self.keepalive_timeout
        for sock in socks:
            try:
                sock.setblocking(True)
                set_io_timeout(sock, self.io_timeout)
                addresses = address_environ(
                    sock.getsockname(), sock.getpeername(), sock.family == AF_UNIX
                )
            except OSError:  # the client is gone already
                sock.close()
                continue
            fd = sock.fileno()
            client = Client(sock, fd)  # set up as _accept() does
            client.io_timeout = self.io_timeout
            client.client = addresses["REMOTE_ADDR"]
            client.base = base_environ(
                addresses, self._scheme, self.threaded, self._multiprocess
            )
            client.head_timer = False  # kept alive, between two requests
            client.deadline = deadline
            self._clients[fd] = client
            client.registered = True
            poller.add_conn(fd)  # reported at once if a request waits

    def _passes_on(self, client: Client) -> bool:
        """While stopping: whether ``client``'s connection can be handed over
        rather than closed once it waits for its next request."""
        return (
            self.hand_off is not None
            and not client.tls
            and not client.tls_pending
            and not client.lingering
        )

    def _pass_on(self, clients: list[Client]) -> None:
        """Hand connections that wait for their next request over to the
        next process (see :attr:`hand_off`); close this process's copies."""
        socks = []
        poller = self._poller
        for client in clients:
            if self._clients.pop(client.fd, None) is None:
                continue  # closed or handed over by another thread
            if poller is not None and client.registered:
                # The connection lives on elsewhere: closing our copy would
                # leave it in our epoll set.
                poller.remove(client.fd)
            socks.append(client.sock)
        self._pass_socks_on(socks)

    def _pass_socks_on(self, socks: list[socket.socket]) -> None:
        """Hand ``socks`` on, or close them when they cannot be (as without a
        next process); close this process's copies either way."""
        if socks and self.hand_off is not None:
            self.hand_off(socks)
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass

    def _sweep(self, now: float) -> None:
        """Close connections whose header or keep-alive timer ran out.

        A timer that ran out while the loop could not poll (a long request
        without threads) is not the client's fault: its request may be
        waiting unread. That connection gets one more second.
        """
        stall_start, stall_end = self._stall
        for client in list(self._clients.values()):
            if client.busy or now < client.deadline:
                continue
            if stall_start <= client.deadline <= stall_end:
                client.deadline = now + 1.0
                continue
            if client.conn.head_started and not client.lingering:
                log_error(
                    f"{client.client}: closed a connection that did not send a"
                    f" complete request head within {self.header_timeout:g} s."
                )
                try:
                    client.sock.setblocking(False)
                    client.sock.send(
                        http11.error_response(
                            408, "the request head did not arrive in time."
                        )
                    )
                except (OSError, ValueError):
                    pass
            self._close(client)

    def _close(self, client: Client) -> None:
        if self._clients.pop(client.fd, None) is None:
            return
        poller = self._poller
        if poller is not None and client.registered:
            poller.forget(client.fd)
        try:
            client.sock.close()
        except OSError:
            pass

    def _release(self, client: Client) -> None:
        """Forget a connection whose socket the application took (open)."""
        if self._clients.pop(client.fd, None) is None:
            return
        poller = self._poller
        if poller is not None and client.registered:
            poller.remove(client.fd)

    def _rearm(self, client: Client) -> None:
        if self._stopping:
            if self._passes_on(client) and not client.conn.head_started:
                self._pass_on([client])
                return
            if not self._answer_arriving(client):
                self._close(client)
            return
        poller = self._poller
        client.busy = False
        if poller is None:
            self._close(client)
            return
        # Once re-armed, another thread may serve the connection at once:
        # every change to it comes first.
        first = not client.registered
        client.registered = True
        try:
            poller.rearm(client.fd, first=first)
        except (OSError, ValueError):
            self._close(client)

    def _last_answer(self, client: Client) -> None:
        """While stopping: make the answer in progress on ``client`` say
        ``Connection: close``, unless the connection is handed over."""
        if not self._passes_on(client):
            client.conn.must_close()

    @staticmethod
    def _may_get_request(client: Client) -> bool:
        """While stopping: whether ``client``'s connection may still have a
        request on its way (accepted before the stop, or mid-head), which a
        reload must answer rather than reset; one chance per connection."""
        return client.head_timer and not client.tls_pending and not client.last_chance

    def _answer_last(self, client: Client) -> None:
        """Answer the request that arrived on ``client`` while stopping."""
        client.last_chance = True
        client.busy = True
        self._handle_ready(client)

    def _answer_arriving(self, client: Client) -> bool:
        """While stopping: wait briefly for ``client``'s request and answer
        it. True when it was answered."""
        if not self._may_get_request(client) or not with_data([client]):
            return False
        self._answer_last(client)
        return True

    def _drain(self, quick: bool = False) -> None:
        """After the loop: hand idle connections over (see :attr:`hand_off`)
        or close them, give busy ones time."""
        with self._adopt_lock:
            self._adopt_open = False
            late, self._adopted = self._adopted, []
        self._pass_socks_on(late)
        if self.hand_off is not None:
            self._pass_on(
                [
                    client
                    for client in self._clients.values()
                    if not client.busy
                    and self._passes_on(client)
                    and not client.conn.head_started
                ]
            )
        fresh = [
            client
            for client in self._clients.values()
            if not client.busy and self._may_get_request(client)
        ]
        arriving = with_data(fresh)  # one wait for all of them
        for client in list(self._clients.values()):
            if client.busy:
                self._last_answer(client)
            elif client in arriving:
                try:
                    self._answer_last(client)
                except Exception:  # pragma: no cover - _handle_ready closed it
                    pass
                self._close(client)
            else:
                self._close(client)
        grace = min(self.shutdown_timeout, 1.0) if quick else self.shutdown_timeout
        deadline = time.monotonic() + grace
        while self._clients and time.monotonic() < deadline:
            time.sleep(0.01)
        for client in list(self._clients.values()):
            try:
                client.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._close(client)
        if self._pool is not None:
            self._pool.stop(1.0)
            self._pool = None

    # -- one connection -------------------------------------------------------

    def _handle_ready(self, client: Client) -> None:
        """The client has bytes for us: read, answer what is complete."""
        if client.lingering:
            self._drop_input(client)
            return
        try:
            if client.tls_pending:
                if not self._handshake(client):
                    return  # closed, or refused
                if not self.threaded:
                    # Requests are served on the loop's thread: hand it over
                    # as ready (its request may sit decrypted in the TLS
                    # buffer already, where the poller cannot see it).
                    poller = self._poller
                    if poller is None or self._stopping:
                        self._close(client)
                        return
                    poller.push_ready(client.fd)
                    return
                # The request may be in flight already (or decrypted into
                # the TLS buffer, where the poller cannot see it): read now.
            self._serve_client(client)
        except BaseException:
            self._close(client)
            raise

    def _handshake(self, client: Client) -> bool:
        """Make ``client`` a TLS connection; False when it failed, and the
        connection was closed (or refused, for plain HTTP)."""
        context = self.ssl_context
        assert context is not None
        raw = client.sock
        try:
            raw.settimeout(self.header_timeout)
            first = raw.recv(1, socket.MSG_PEEK)
            if not first:
                self._close(client)
                return False
            if first != b"\x16":
                log_error(f"{client.client}: plain HTTP request to an HTTPS server.")
                self._answer_and_linger(
                    client, http11.error_response(400, PLAIN_HTTP_MESSAGE)
                )
                return False
            sock = context.wrap_socket(
                raw, server_side=True, do_handshake_on_connect=False
            )
            client.sock = sock
            sock.do_handshake()
            sock.settimeout(self.io_timeout)
        except (OSError, ssl.SSLError, ValueError) as error:
            reason = handshake_failure(error)
            log_error(f"{client.client}: TLS handshake failed: {reason}")
            self._close(client)
            return False
        client.tls = True
        client.tls_pending = False
        return True

    def _serve_client(self, client: Client) -> None:
        sock = client.sock
        conn = client.conn
        try:
            if client.tls:
                # A half-sent TLS record must not hold this thread (or, when
                # not threaded, the whole server): read without waiting.
                sock.settimeout(0)
                try:
                    data = sock.recv(RECV_SIZE)
                finally:
                    sock.settimeout(self.io_timeout)
            else:
                data = sock.recv(RECV_SIZE, MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            self._rearm(client)
            return
        except OSError:
            self._close(client)
            return
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as error:
                self._refuse(client, error)
                return
            if event is NEED_DATA:
                if client.tls and sock.pending():  # type: ignore[attr-defined]
                    try:
                        conn.receive_data(sock.recv(RECV_SIZE))
                    except OSError:
                        self._close(client)
                        return
                    continue
                if conn.head_started and not client.head_timer:
                    client.head_timer = True
                    client.deadline = time.monotonic() + self.header_timeout
                self._rearm(client)
                return
            if event is CONNECTION_CLOSED or event is PAUSED:
                self._close(client)
                return
            if type(event) is not http11.Request:  # pragma: no cover - defensive
                self._close(client)
                return
            client.head_timer = False
            if self._stopping:
                self._last_answer(client)
            if not self.threaded:
                # A slow body, or a stalled reader of the answer, would hold
                # every other client: bound them like a slow head
                # (Client.recv, Client.send).
                client.body_wait = client.send_wait = self.header_timeout
            exchange = Exchange(
                self.app,
                conn,
                client,
                client.client,
                self.passthrough_errors,
                not client.tls,
            )
            environ = build_environ(event, client.base, Input(conn, client))
            environ[TAKE_SOCKET_KEY] = _taker(exchange, client)
            exchange.run(environ)
            if exchange.taken:
                self._release(client)
                return
            if exchange.aborted:
                self._close(client)
                return
            if not conn.keep_alive or (self._stopping and not self._passes_on(client)):
                if conn.body_done:
                    self._close(client)
                else:
                    self._linger(client)
                return
            if not conn.body_done and not self._discard_body(client):
                self._linger(client)
                return
            conn.start_next_cycle()
            client.deadline = time.monotonic() + self.keepalive_timeout

    def _discard_body(self, client: Client) -> bool:
        """Read and drop the rest of an unread body; False to close instead."""
        conn = client.conn
        left = http11.DRAIN_LIMIT
        try:
            while True:
                event = conn.next_event()
                if type(event) is bytes:
                    left -= len(event)
                    if left < 0:
                        return False
                elif event is http11.END_OF_MESSAGE:
                    return True
                elif event is NEED_DATA:
                    data = client.recv()  # bounded as the body's other reads
                    if not data:
                        return False
                    conn.receive_data(data)
                else:
                    return False
        except (OSError, RemoteProtocolError):
            return False

    def _refuse(self, client: Client, error: RemoteProtocolError) -> None:
        """Answer a protocol error with its status, log one line, close."""
        log_error(f"{client.client}: {error} ({error.status_hint})")
        self._answer_and_linger(
            client, http11.error_response(error.status_hint, str(error))
        )

    def _answer_and_linger(self, client: Client, answer: bytes) -> None:
        """Send a refusal, then close through :meth:`_linger`."""
        try:
            client.sock.sendall(answer)
        except OSError:
            self._close(client)
            return
        self._linger(client)

    def _linger(self, client: Client) -> None:
        """Close ``client`` after an answer that left request bytes unread.

        Closing a socket with bytes unread makes the kernel send a reset, and
        a reset can cost the client the answer it has not read yet (or stop
        an upload before the client reads why). So: end our side now, then
        read and drop what the client still sends, from the poller, until it
        closes or for :data:`LINGER_TIME` at most.
        """
        sock = client.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            self._close(client)
            return
        client.lingering = True
        client.head_timer = False
        client.deadline = time.monotonic() + LINGER_TIME
        if self._stopping:
            self._close(client)  # our end went out first: no reset eats it
        else:
            self._rearm(client)

    def _drop_input(self, client: Client) -> None:
        """A lingering connection is readable: drop what came; close at its end."""
        try:
            for _ in range(16):
                if not client.sock.recv(RECV_SIZE):
                    break
            else:
                self._rearm(client)  # more to come: the poller says when
                return
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            self._rearm(client)
            return
        except OSError:
            pass
        self._close(client)


def _taker(exchange: Exchange, client: Client) -> t.Callable[[], socket.socket]:
    """The environ's :data:`~.wsgi.TAKE_SOCKET_KEY` callable for one exchange."""

    def take() -> socket.socket:
        if exchange.headers_sent:
            raise RuntimeError("The response has started; the socket stays.")
        exchange.taken = True
        return client.sock

    return take


def make_server(
    host: str,
    port: int,
    app: WSGIApplication,
    threaded: bool = False,
    processes: int = 1,
    ssl_context: ssl.SSLContext | tuple[str, str] | str | None = None,
) -> Server:
    """Bind ``host:port`` and return a :class:`Server` for ``app``.

    :param host: an IP address, a host name, ``localhost`` (IPv4 and IPv6) or
        ``unix://PATH``.
    :param port: the TCP port; ``0`` picks a free one (see :attr:`Server.port`).
    :param app: the WSGI application.
    :param threaded: serve requests concurrently, on threads (see :mod:`._relay`).
    :param processes: fork this many serving processes (POSIX only).
    :param ssl_context: ``"adhoc"``, a ``(cert_file, key_file)`` tuple or an
        :class:`ssl.SSLContext` to serve HTTPS.
    """
    from .sockets import bind_sockets
    from .tls import load_ssl_context

    check_concurrency(threaded, processes)
    context = load_ssl_context(ssl_context)
    sockets = bind_sockets(host, port)
    try:
        return Server(
            sockets, app, threaded=threaded, processes=processes, ssl_context=context
        )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
