"""The database tables; constraints live with them."""

from app.models.applications import ApiKey, Application
from app.models.events import ArrivalCounts, ArrivalCountsHourly, Event, Session, SessionApplication
from app.models.mouse import MouseMetric, MousePoint, MouseTotals
from app.models.rejections import Rejection

__all__ = [
    "ApiKey", "Application", "ArrivalCounts", "ArrivalCountsHourly", "Event", "MouseMetric", "MousePoint", "MouseTotals",
    "Rejection", "Session", "SessionApplication",
]
