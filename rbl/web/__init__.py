"""The public lookup and removal site served by ``rbl serve`` (twisted.web + Jinja2).

A listed party looks up an IP or a domain, reads the evidence (the trap
*domain*, never the trap address: the site reads the store only through
rbl.store.website, that is rbl.store.public and rbl.store.requests) and
asks for removal. Imports the store only through functions run in the
database thread pool; never imports rbl.dnsserver or the index.
"""
