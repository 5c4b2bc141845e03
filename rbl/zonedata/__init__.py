"""A zone's content for every writer of whole zones (transfers, dumps). Pure.

snapshot: store rows into ZoneIndex objects (test points, allowlist expansion);
view: one consistent view of an index and its entries in nesting order;
records: the view's DNS records, rendered as wire (AXFR) and as text (zone files);
names: owner names and address text.
"""
