"""``python -m katcpx_devices``: the same as ``katcpx-sim``."""

import sys

from .sim import main

if __name__ == "__main__":
    sys.exit(main())
