"""Allow ``python -m portrait_style``."""

from .cli import main

raise SystemExit(main())
