"""What the katcp-cmd shell asks or tells a user outside of KATCP messages: whether to wait
for a server that is not there yet, and how to stop a request Ctrl-C left running."""

from __future__ import annotations

import asyncio

from ._printable import printable

__all__ = ["offer_to_wait", "stop_requests"]


def stop_requests(name: str, requests: dict[str, str]) -> list[str]:
    """The device's requests that could stop request `name` (``X-stop``, ``stop``...)."""
    base = name
    for suffix in ("-start", "-wait", "-status"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    candidates = [f"{base}-stop", f"{base}-abort", "stop", "abort"]
    return [c for c in candidates if c in requests and c != name]


async def offer_to_wait(problem: str) -> bool:
    """Ask whether to wait for the server (interactive shell only); True for yes."""
    # The problem may quote the server (its #disconnect reason): escaped.
    question = f"katcp-cmd: {printable(problem, backslash=False)}\nWait for it and connect when it is up? [Y/n] "
    loop = asyncio.get_running_loop()
    try:
        answer = await loop.run_in_executor(None, input, question)
    except EOFError:
        return False
    return answer.strip().lower() in ("", "y", "yes")
