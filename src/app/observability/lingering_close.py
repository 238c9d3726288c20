"""Early refusals under gunicorn: a large unread body gets `Connection: close`, then a lingering close.

A request refused before its body is read (401, 403, 415, 413) leaves that body on the socket.
gunicorn's gthread worker answers it `Connection: keep-alive`, drains at most 64 KiB of the rest,
then closes with the remainder still arriving; closing a socket with unread bytes makes the kernel
send a reset, so the client's send fails and a client that reads only after sending never sees its
answer. Here such an answer says `Connection: close`, and once it is out the server shuts its write
side and reads and discards what the client still sends, for a bounded time and amount, as nginx's
and Apache's lingering close do. The connection then ends with the client's own close, not a reset.
"""

import socket
import time

# gunicorn drains an unread rest smaller than this after the answer and keeps the connection
# (gunicorn.http.parser._DRAIN_MAX_BYTES); it gives up, and closes, at this size.
KEEP_ALIVE_DRAIN = 64 * 1024
# A closing connection reads and discards for this long at most: long enough for a client to
# finish sending a body several times the 1 MiB limit, short enough not to hold a thread for long.
LINGER_SECONDS = 5.0
# A client that has stopped sending without closing is waited for this long.
LINGER_IDLE_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024


class LingeringClose:
    """WSGI middleware for gunicorn's workers: close gracefully after a body left mostly unread."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        body = environ.get("wsgi.input")
        if not unread_beyond_drain(body):
            # No body (or a small one): nothing the server cannot drain can be left, so the
            # request costs nothing more than this check.
            return self.app(environ, start_response)

        closing = False

        def start(status, headers, exc_info=None):
            nonlocal closing
            # Decided as the answer is made, once the app has read what it wanted: an accepted
            # request has read its body, so it keeps its connection.
            if unread_beyond_drain(body):
                # gunicorn drops a `Connection` header an app sets; its response object (this
                # bound method's owner) is what says `close` instead of `keep-alive`.
                force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
                if force_close is not None:
                    force_close()
                    closing = True
            return start_response(status, headers, exc_info)

        # Flask calls start_response before it returns its body, so `closing` is known here.
        response = self.app(environ, start)
        sock = environ.get("gunicorn.socket")
        if not closing or sock is None:
            return response
        return LingerAfterAnswer(response, sock)


def unread_beyond_drain(body) -> bool:
    """Whether more of the request body is left unread than gunicorn drains to keep a connection."""
    reader = getattr(body, "reader", None)
    left = getattr(reader, "length", None)  # a Content-Length body: the bytes not read yet
    if isinstance(left, int):
        return left >= KEEP_ALIVE_DRAIN
    # A chunked body has no known size until it has been read to its end (its parser is then gone).
    return getattr(reader, "parser", None) is not None


class LingerAfterAnswer:
    """The app's response body; closing it, once gunicorn has written it all, lingers on the socket."""

    def __init__(self, response, sock: socket.socket):
        self.response = response
        self.sock = sock
        self.answered = False

    def __iter__(self):
        yield from self.response
        # gunicorn closes this iterable after writing the last piece; when the app failed
        # instead, gunicorn still has an error answer to write, so the socket is left open.
        self.answered = True

    def close(self):
        close = getattr(self.response, "close", None)
        if close is not None:
            close()
        if self.answered:
            linger(self.sock)


def linger(sock: socket.socket) -> None:
    """Send FIN after the answer, then read and discard until the client closes or a bound is hit."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return  # the client is already gone
    deadline = time.monotonic() + LINGER_SECONDS
    discarded = 0
    try:
        while discarded < LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(min(left, LINGER_IDLE_SECONDS))
            data = sock.recv(64 * 1024)
            if not data:
                return  # the client has sent everything and closed: gunicorn's close sends no reset
            discarded += len(data)
    except OSError:
        return
    # Past the bounds: stop reading here, so gunicorn's own graceful close (on its event loop's
    # thread) finds no more to wait for and closes at once.
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
