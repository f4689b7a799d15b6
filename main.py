"""Scout Desk launcher: records the start time, then hands off to `app.cli` (GUI by default).

Only the standard library is imported here; `app.cli` keeps torch and transformers out of the GUI
path, so the window can show before any model code loads.
"""

import os
import sys
import time

# Kept first: the start-up probe falls back on this where /proc/self/stat is unavailable.
os.environ["SCOUT_DESK_T0"] = repr(time.time())


def main() -> int:
    """Run the `scout-desk` command and return its exit code."""
    from app.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
