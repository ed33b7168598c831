"""``python -m fg_depth_core`` is the ``fg-depth`` command."""

import sys

from fg_depth_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
