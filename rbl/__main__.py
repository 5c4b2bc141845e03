"""Allow ``python -m rbl``."""

from rbl.cli import main

main()
