"""Flat-file dumps of the zones for mirrors: files, their HTTP resource, the hourly job.

``writer`` (no Twisted, no SQLAlchemy) writes the files: the ``formats`` plug-ins
render them, ``publish`` makes them one atomic generation, ``summary`` counts
and checksums them. ``service`` runs the writer on a timer inside ``rbl serve``;
``resource`` serves the directory over HTTP; ``rbl dump`` is rbl/cli/dump.py.
"""
