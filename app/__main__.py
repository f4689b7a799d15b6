"""`python -m app` runs the scout-desk command."""

import sys

from app.cli import main

sys.exit(main())
