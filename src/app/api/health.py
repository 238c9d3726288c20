"""Liveness and readiness probes."""

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from app.broker.readiness import broker_problem
from app.extensions import db

blp = Blueprint("health", __name__, url_prefix="/", description="Probes for load balancers")


class Health(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


def database_problem() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        db.session.rollback()
        return type(exc).__name__


@blp.route("healthz")
class Liveness(MethodView):
    @blp.response(200, Health)
    def get(self):
        """The process is up"""
        return {"status": "ok"}


@blp.route("readyz")
class Readiness(MethodView):
    @blp.response(200, Health)
    @blp.alt_response(503, schema=Health, description="The database is down, or the broker cannot confirm a message")
    def get(self):
        """The database answers, and the broker confirms a message (for a quorum queue: a majority of its nodes wrote it)"""
        problems = {"database": database_problem(), "broker": broker_problem()}
        checks = {name: problem or "ok" for name, problem in problems.items()}
        down = [name for name, problem in problems.items() if problem]
        if down:
            return {"status": f"unavailable: {', '.join(down)} down", "checks": checks}, 503
        return {"status": "ok", "checks": checks}
