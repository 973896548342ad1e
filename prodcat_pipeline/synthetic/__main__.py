"""`python -m prodcat_pipeline.synthetic`: write a synthetic LSPC-style DatasetDict."""

from . import main

raise SystemExit(main())
