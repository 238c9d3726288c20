"""The API is stateless: its requests neither open nor save Flask's cookie session."""

from flask.sessions import SecureCookieSessionInterface


class CookieSessionOutsideTheApi(SecureCookieSessionInterface):
    """A call to /api/ carries its key on every request, and nothing in it reads the session.

    Opening the signed cookie session on every call (itsdangerous' serializer, made per request) was
    ~2.5 % of a single-event POST's CPU. The dashboard and Socket.IO (which copies the session at
    connect) keep the cookie session as before.
    """

    def open_session(self, app, request):
        if request.path.startswith("/api/"):
            return self.null_session_class()
        return super().open_session(app, request)
