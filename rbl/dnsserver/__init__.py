"""The authoritative DNS server: answers from the in-memory index only.

Imports nothing from rbl.store, rbl.web, feeds or the CLI.
"""
