"""Feeds: parsers that turn MTA logs and other inputs into TrapHits, and live feeds.

Parsers (``rbl.feeds.parsers``) are pure and import neither Twisted nor
SQLAlchemy. Live feeds (the Postfix policy service) are Twisted protocols
that hand TrapHits to a recorder without touching the store themselves.
"""
