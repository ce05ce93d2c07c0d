"""Allow ``python -m phichat``."""

from phichat.cli import main

raise SystemExit(main())
