"""``python -m portolan``."""

from portolan.cli import main

main()
