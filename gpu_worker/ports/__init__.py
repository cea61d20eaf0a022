"""Ports: the four interfaces the pipeline talks to. Adapters: local (folder/SQLite/log) and AWS.

Callers never see vendor errors: adapters translate them into the exceptions in `exceptions.py`
or builtin ones (`FileNotFoundError`).
"""
