"""``python -m katcpx.gateway``: same as the ``katcpx-gateway`` command."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
