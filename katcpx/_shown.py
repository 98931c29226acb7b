"""How wire text is shown to people: in error replies, ``#log`` informs and logs.

Never a Python repr (``b'...'``, doubled backslashes, ``['x']``): the text as a client
typed it, quoted, with what cannot be printed escaped the KATCP way (spec 5.1 section
3.1: ``\\0 \\t \\n \\r \\e``) and any other control or undecodable byte as ``\\xNN``
(as ``str(Message)`` shows one). Stdlib only: :mod:`katcpx.errors` uses it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["show_wire", "show_names", "printable"]

_KATCP_ESCAPES: Final = {0: "\\0", 9: "\\t", 10: "\\n", 13: "\\r", 27: "\\e"}
# Every C0 control, DEL and the C1 controls: escaped so that the text cannot drive a
# terminal and stays on one line.
_UNPRINTABLE: Final = {
    code: _KATCP_ESCAPES.get(code, f"\\x{code:02x}")
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
}


def show_wire(data: bytes | str) -> str:
    """`data` (text as it is on the wire) quoted for a message to people: ``'?x[0]'``.

    UTF-8 text is shown as it is, backslashes included (a wire escape reads as the client
    sent it); control characters as KATCP escapes or ``\\xNN``, bytes that are not UTF-8
    as ``\\xNN``.

    Parameters
    ----------
    data : bytes or str
        Wire text (escaped as on the wire, when it is an argument).

    Returns
    -------
    str
        The text between single quotes.
    """
    return "'" + printable(data) + "'"


def printable(data: bytes | str) -> str:
    """`data` as :func:`show_wire` shows it, without the quotes (for texts that quote)."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    return text.translate(_UNPRINTABLE)


def show_names(names: list[str]) -> str:
    """Names listed for a message to people: ``a, b`` (each shown as :func:`show_wire`
    shows it only when it holds something unprintable)."""
    return ", ".join(
        name if name.translate(_UNPRINTABLE) == name else show_wire(name) for name in names
    )
