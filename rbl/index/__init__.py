"""The in-memory DNS view of the list, built for lookups. Pure; never imports the store."""
