"""What tests share, as modules named after what they hold (dnspython's tests/nanonameserver.py).

Tests import these, never ``tests.conftest`` (pytest loads it; it holds only
fixtures) and never another test module; tests/test_layout.py checks it.

- processes: the checkout (REPO), a child's environment, ``rbl_command``, ``require_peer``
- server: ``start_server``/``stop_server``, a ``RunningServer`` a test can ``query()``
- config: ``write_config`` (the one rbl.toml builder), ``CONFIG_TEMPLATE``, ``LIVE_SETTINGS``
- database: ``db_scalar``/``db_rows`` on a test's store, any backend
- pg_databases: a throwaway PostgreSQL database per test, from a migrated template
- dns_zones: the in-process two-zone setup and a Responder over it
- dns_client: dnspython queries: names, ``make_query``, ``ask`` a Responder, UDP/TCP to a server
- dns_wire: unvalidated DNS wire builders for the fuzz tests
- trap_hits: ``trap_hit`` and ``store_hits`` for store and policy tests
- store_faults: a store that refuses one client's hits, and its fix
- fault_proxy: TCP forwarders a test can cut (``FaultProxy`` resets, ``Forwarder`` closes)
- policy_requests: Postfix policy requests, as bytes and over a socket
- postfix: throwaway Postfix instances and the policy server they ask
- loop_run: the whole loop in a network namespace (run as ``python -m tests.support.loop_run``)
- sendmail_peer: a real sendmail in namespaces (run as ``python -m tests.support.sendmail_peer``)
- nsd: a real NSD secondary's configuration, and asking it
- hostile_sessions: hostile SMTP sessions the real-MTA tests replay
- hostile_text: hypothesis strategies of hostile log text for the parser tests
- log_samples: the sample logs of tests/data/logs and their expected results
- web_requests: raw HTTP requests into a twisted.web Site
- web_site: the public site over a seeded store, and its form helpers
"""
