"""Version information for katcpx (the layout katcp-python documents)."""

#: Five-element tuple: major, minor, patch, release level, serial.
VERSION: tuple[int, int, int, str, int] = (0, 1, 0, "final", 0)

#: Version as a string, e.g. ``"0.1.0"``.
VERSION_STR: str = ".".join(str(part) for part in VERSION[:3])

__version__: str = VERSION_STR
