"""Persistence: the only package that imports SQLAlchemy.

Functions take a ``Connection`` opened by the caller (one transaction per
batch), so a CLI command, a feed or a thread-pool job decides the
transaction's extent. Every change to what DNS answers writes a change-log row
and an audit row in the same transaction.
"""
