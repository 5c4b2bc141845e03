"""Prometheus metrics: counters kept by the serving code, read and rendered on a scrape."""
