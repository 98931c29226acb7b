"""Where katcp-cmd's options may go, and what to say when one is in the wrong place.

The common options (``-s``, ``-t``, ``--color``, ``--no-color``, ``-v``, ``--wait``) work
before or after a tool name, and before or after the address of the shell / one-shot form.
Words after a request name are the request's arguments, so an option there would be sent to
the device: katcp-cmd refuses known option names there and says where they go (``--`` before
them sends them as they are).
"""

from __future__ import annotations

from ._connection import CmdError, looks_like_address

__all__ = ["TOOLS", "arrange", "option_name"]

TOOLS = ("get", "request", "list", "monitor")

#: Options of every form; the value says whether the option takes a value.
COMMON = {
    "-s": True,
    "--server": True,
    "-t": True,
    "--timeout": True,
    "--color": False,
    "--no-color": False,
    "-v": False,
    "--verbose": False,
    "--wait": False,
}
#: Options of the shell and one-shot form (``-i``/``-r`` also of the request tool).
MAIN = {"-i": False, "-r": False, "--history": True, "--raw": False, "-h": False, "--help": False}
#: Options of the tools, with the tools that have them.
TOOL_ONLY = {
    "--json": ("get", "list", "monitor"),
    "--format": ("get", "monitor"),
    "--filter": ("list",),
    "--requests": ("list",),
    "--strategy": ("monitor",),
    "-p": ("monitor",),
    "--period": ("monitor",),
    "--duration": ("monitor",),
    "--maximum": ("monitor",),
}
_TAKES_VALUE = {**COMMON, **MAIN}


def option_name(word: str) -> str | None:
    """The option `word` spells (``--timeout=2`` and ``-t2`` included), or None."""
    if not word.startswith("-") or word == "-" or word == "--":
        return None
    if word.startswith("--"):
        return word.split("=", 1)[0]
    if word[1:2].isdigit() or word[1:2] == ".":
        return None  # a negative number
    return word[:2]


def _takes_separate_value(word: str) -> bool:
    name = option_name(word)
    return bool(name and _TAKES_VALUE.get(name)) and word == name


def _leading_options(words: list[str], where: str) -> tuple[list[str], list[str]]:
    """Split the options at the start of `words` from the rest; check tool-only ones."""
    i = 0
    while i < len(words):
        name = option_name(words[i])
        if name is None:
            break
        if name in TOOL_ONLY:
            tools = TOOL_ONLY[name]
            raise CmdError(
                f"{name} is an option of the {', '.join(tools)} tool{'s' * (len(tools) > 1)}: "
                f"put it after the tool name, as in 'katcp-cmd {tools[0]} HOST:PORT ... {name}' "
                f"(it was {where})"
            )
        if name not in _TAKES_VALUE:
            break  # unknown: let argparse say so
        i += 2 if _takes_separate_value(words[i]) else 1
    return words[:i], words[i:]


def arrange(argv: list[str]) -> tuple[str | None, list[str]]:
    """Put katcp-cmd's arguments in the order its parsers read them.

    Returns
    -------
    tool : str or None
        The tool to run, or None for the shell / one-shot form.
    argv : list of str
        The arguments for that tool's parser (options first), or for the main parser.

    Raises
    ------
    CmdError
        For an option in a place where it cannot work, saying where it goes.
    """
    lead, rest = _leading_options(argv, "before the tool name or address")
    if rest and rest[0] in TOOLS:
        tool = rest[0]
        for word in lead:
            name = option_name(word)
            if name in MAIN and not (tool == "request" and name in ("-i", "-r")):
                if name in ("-h", "--help"):
                    return tool, ["--help"]
                raise CmdError(
                    f"{name} is not an option of the {tool} tool: it applies to the shell and "
                    f"one-shot requests ('katcp-cmd {name} ... HOST:PORT [REQUEST ...]')"
                )
        return tool, lead + rest[1:]
    if not rest or not looks_like_address(rest[0]):
        return None, lead + _checked_request(rest)
    between, request = _leading_options(rest[1:], "after the address")
    return None, lead + between + rest[:1] + _checked_request(request)


def _checked_request(words: list[str]) -> list[str]:
    """A request name and its arguments: no katcp-cmd option among them, unless after --."""
    if words and words[0] == "--":
        return words[1:]
    for i, word in enumerate(words[1:], 1):
        if word == "--":
            return words[:i] + words[i + 1 :]
        name = option_name(word)
        if name is None or not name.startswith("--"):
            continue  # short options may be request arguments (-3, -x)
        if name in COMMON or name in MAIN:
            where = "before the request name"
        elif name in TOOL_ONLY:
            where = f"after a tool name ({', '.join(TOOL_ONLY[name])})"
        else:
            continue
        raise CmdError(
            f"{name} after the request name {words[0]!r} would be sent to the device as a "
            f"request argument: put it {where}, or write -- before it to send it as is"
        )
    return words
