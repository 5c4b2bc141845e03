"""rbl: an authoritative DNSBL/RHSBL server that builds its list from greytrap evidence."""

__version__ = "0.1.0"
