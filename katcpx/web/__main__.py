"""``python -m katcpx.web``: same as the ``katcpx-web`` command."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
