"""`/console`: the data team's page. It carries no data and no key: its script asks the read API,
with a key the user pastes, kept in the tab's sessionStorage only (never a URL, a cookie or a log)."""

from flask import Blueprint, render_template

from app.page_headers import lock_down

blp = Blueprint("console", __name__, url_prefix="/console")

# Our own scripts and styles only, API calls to this origin only, never framed: a key pasted here
# can be read by nothing but this page's own code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@blp.after_request
def secure_headers(response):
    lock_down(response, CONTENT_SECURITY_POLICY)
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.get("")
def page():
    """Traffic and refusals over time, failing types, lookup by event or session."""
    return render_template("console.html")
