"""Listing policy: what evidence does to the list, and what public outputs may show. Pure."""
