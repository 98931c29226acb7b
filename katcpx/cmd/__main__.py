"""``python -m katcpx.cmd``: the same as the ``katcp-cmd`` script."""

from . import main

raise SystemExit(main())
