"""Flat-file dumps of the zones for mirrors: files, their HTTP resource, the hourly job.

``writer`` (no Twisted, no SQLAlchemy) writes the files; ``service`` runs it on
a timer inside ``rbl serve``; ``resource`` serves the directory over HTTP;
``cli`` is the ``rbl dump`` command.
"""
