"""A transparent object proxy, katcp-python's ``ObjectWrapper`` (``katcp.object_proxies``).

Attribute reads, writes and deletes go to ``__subject__`` unless the wrapper's class defines
the attribute itself, so a subclass overrides a few attributes of the wrapped object and
passes the rest through.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ObjectWrapper"]


class ObjectWrapper:
    """Wrap ``subject``; attributes the wrapper's class does not define come from it.

    Parameters
    ----------
    subject
        The wrapped object, kept as ``__subject__``.
    """

    def __init__(self, subject: Any) -> None:
        object.__setattr__(self, "__subject__", subject)

    def _own(self, name: str) -> bool:
        return any(name in vars(klass) for klass in type(self).__mro__ if klass is not object)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup (the wrapper's class and instance) fails.
        return getattr(object.__getattribute__(self, "__subject__"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__subject__" or self._own(name):
            object.__setattr__(self, name, value)
        else:
            setattr(self.__subject__, name, value)

    def __delattr__(self, name: str) -> None:
        if self._own(name):
            object.__delattr__(self, name)
        else:
            delattr(self.__subject__, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.__subject__!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__subject__(*args, **kwargs)
