"""``python -m esb.cli``: the same as the ``esb`` console script."""

from esb.cli import main

main()
