"""Flask extensions, created unbound and bound to an app by `create_app`."""

from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from app.errors import EyeApi


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = EyeApi()
# threading + simple-websocket: eventlet/gevent would be picked silently if installed.
socketio = SocketIO(async_mode="threading")
