"""Upkeep of the tables that grow with traffic: time partitions made ahead, expired data dropped.

Run by the periodic task (tasks/maintenance.py, scheduled by Celery beat) and by hand with
`flask partitions …`; both call partitions.py.
"""
