"""The headers that lock down the pages The Eye serves (the dashboard, the console), written once."""


def lock_down(response, content_security_policy: str):
    """The page's own policy for scripts and connections; never framed, never sniffed, no referrer."""
    response.headers["Content-Security-Policy"] = content_security_policy
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
