"""`python -m prodcat_pipeline`: the `prodcat` command line."""

from .cli import main

main()
