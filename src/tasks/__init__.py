"""Celery: the app bound to Flask, and the tasks that call the same services as the views."""
