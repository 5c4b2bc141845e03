"""The data every layer shares: trap hits, listing keys, codes, names, trap definitions.

Pure: imports only ``rbl.errors`` and the standard library (and the public suffix list).
"""
