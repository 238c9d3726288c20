"""The database tables; constraints live with them."""

from app.models.applications import ApiKey, Application
from app.models.events import ArrivalCounts, Event, Session, SessionApplication
from app.models.mouse import MouseMetric, MousePoint, MouseTotals
from app.models.rejections import Rejection

__all__ = [
    "ApiKey", "Application", "ArrivalCounts", "Event", "MouseMetric", "MousePoint", "MouseTotals", "Rejection", "Session",
    "SessionApplication",
]
