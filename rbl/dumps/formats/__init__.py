"""The dump's file formats, one module each (rbldnsd's dataset table in spirit).

Every module here except ``base`` is a format plug-in: it defines
``formats(zone)``, the ``base.Format`` objects it writes for that zone (none if
it has nothing for the zone's kind). The writer finds them by module name, in
alphabetical order, so adding a format is adding one module.
"""
