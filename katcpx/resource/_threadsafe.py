"""Blocking, thread-safe use of resources from plain (non-async) code.

A resource runs on a tornado IOLoop. :class:`IOLoopManager` runs such a loop in a thread of
its own and :class:`IOLoopThreadWrapper` calls functions on it from other threads, blocking
until they (and any future they return) finish. The ``ThreadSafe*Wrapper`` classes wrap a
resource, container, group, sensor or request so every method call goes through the loop.
:func:`threadsafe_resource` does all of that in one call::

    res = threadsafe_resource({"name": "ant", "address": ("dish", 7147), "controlled": True})
    res.set_sampling_strategy("on_target", "event")
    res.req.target(30, 45)
    res.sensor.on_target.wait(True, timeout=60)
    res.shutdown()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tornado.ioloop import IOLoop
from tornado.platform.asyncio import AsyncIOLoop

from .._joinable_thread import JoinableThread
from ..crossing import LoopBinding
from ._client_resource import KATCPClientResource
from ._container import ClientGroup, KATCPClientResourceContainer
from ._objects import KATCPRequest, KATCPSensor

__all__ = [
    "AttrMappingProxy",
    "IOLoopManager",
    "IOLoopThreadWrapper",
    "MappingProxy",
    "ThreadSafeKATCPClientGroupWrapper",
    "ThreadSafeKATCPClientResourceRequestWrapper",
    "ThreadSafeKATCPClientResourceWrapper",
    "ThreadSafeKATCPSensorWrapper",
    "ThreadSafeMethodAttrWrapper",
    "threadsafe_resource",
]

log = logging.getLogger("katcp.resource")

#: Extra seconds :meth:`ThreadSafeKATCPClientResourceWrapper.shutdown` (a katcpx extension)
#: waits beyond the stop's own `timeout`, so the stop's own result wins the race.
TIMEOUT_GRACE = 1.0


class IOLoopManager:
    """Manage a tornado IOLoop, optionally running in a thread of its own.

    Parameters
    ----------
    managed_default
        Whether :meth:`get_ioloop` creates a new loop run in a managed thread (True) or
        uses ``IOLoop.current()`` (False).
    logger
        Logger to log to.
    """

    def __init__(self, managed_default: bool = True, logger: logging.Logger = log) -> None:
        self._managed = managed_default
        self._logger = logger
        self._ioloop: IOLoop | None = None
        self._thread: JoinableThread | None = None
        self._running = threading.Event()
        self._daemon = True

    @property
    def managed(self) -> bool:
        """Whether the loop runs in a thread this manager owns."""
        return self._managed

    def get_ioloop(self) -> IOLoop:
        """The loop (created on first call)."""
        if self._ioloop is None:
            self.set_ioloop(AsyncIOLoop(make_current=False) if self._managed else IOLoop.current())
        assert self._ioloop is not None
        return self._ioloop

    def set_ioloop(self, ioloop: IOLoop, managed: bool | None = None) -> None:
        """Use `ioloop` (once only); `managed` says whether to run it in a thread."""
        if managed is not None:
            self._managed = managed
        if self._ioloop is not None:
            raise RuntimeError("IOLoop instance already set")
        self._ioloop = ioloop

    def setDaemon(self, daemonic: bool) -> None:
        """Set whether the managed thread is a daemon (before :meth:`start`)."""
        self._daemon = bool(daemonic)

    def start(self, timeout: float | None = None) -> bool | None:
        """Start the managed loop thread (no-op for an unmanaged loop).

        Returns whether the loop runs when `timeout` is given.
        """
        ioloop = self.get_ioloop()
        if not self._managed:
            self._running.set()
        elif self._thread is None or not self._thread.is_alive():

            def run() -> None:
                asyncio.set_event_loop(ioloop.asyncio_loop)  # type: ignore[attr-defined]
                ioloop.add_callback(self._running.set)
                try:
                    ioloop.start()
                except Exception:
                    self._logger.exception("Error running tornado IOLoop")
                finally:
                    self._running.clear()
                    ioloop.close(all_fds=True)

            self._thread = JoinableThread(target=run, name="katcpx-resource-ioloop")
            self._thread.daemon = self._daemon
            self._thread.start()
        return self._running.wait(timeout) if timeout else None

    def stop(
        self, timeout: float | None = None, callback: Callable[[], Any] | None = None
    ) -> concurrent.futures.Future[None]:
        """Call `callback` (awaiting what it returns) on the loop, then stop a managed loop.

        Returns a future that resolves once that is done.
        """
        if timeout:
            self._running.wait(timeout)
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        ioloop = self._ioloop
        if ioloop is None or (self._managed and not self._thread_alive()):
            done.set_result(None)  # nothing runs the loop: stopping is moot
            return done

        async def _stop() -> None:
            try:
                if callback is not None:
                    result = callback()
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                self._logger.exception("Unhandled exception calling stop callback")
            finally:
                if self._managed:
                    # One more loop iteration so callbacks scheduled above get to run.
                    await asyncio.sleep(0)
                    ioloop.stop()
                done.set_result(None)

        ioloop.add_callback(_stop)
        return done

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the managed thread to end (no-op for an unmanaged loop)."""
        if not self._managed:
            return
        if self._thread is None:
            raise RuntimeError("Cannot join if not started")
        self._thread.join(timeout)


class IOLoopThreadWrapper:
    """Call functions on an IOLoop from other threads, blocking until they finish.

    Parameters
    ----------
    ioloop
        The loop (default ``IOLoop.current()``); it must run in another thread.
    """

    #: Seconds to block when a call gives no `timeout` (None: forever).
    default_timeout: float | None = None

    def __init__(self, ioloop: IOLoop | None = None) -> None:
        self.ioloop = ioloop if ioloop is not None else IOLoop.current()
        # Bound once the loop runs; until then no thread is the loop's, and hand-offs queue
        # on the IOLoop (add_callback) so calls made before it starts are kept.
        self._binding = LoopBinding()
        self.ioloop.add_callback(self._binding.bind)

    def call_in_ioloop(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` on the loop and return its (awaited) result.

        Raises
        ------
        RuntimeError
            If called from the loop's own thread (it would deadlock).
        concurrent.futures.TimeoutError
            If the call has not finished after `timeout` seconds (`default_timeout` when
            None), with no message, as katcp-python's. The wait is exactly `timeout`, as in
            katcp-python: an operation given the same `timeout` (say
            ``wrapper.req.slow(timeout=1)``) usually raises this rather than returning its
            own ``fail`` reply. An exception of ``fn`` itself (a ``TimeoutError`` too) is
            raised unchanged.
        """
        if self._binding.on_loop():
            raise RuntimeError("Cannot call a thread-wrapped object from the ioloop")
        timeout = timeout or self.default_timeout  # 0 too means the default, as katcp-python
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                result.set_exception(exc)
                return
            if not inspect.isawaitable(value):
                result.set_result(value)
                return
            fut = asyncio.ensure_future(value)

            def done(f: asyncio.Future[Any]) -> None:
                if f.cancelled():
                    result.set_exception(concurrent.futures.CancelledError())
                elif f.exception() is not None:
                    result.set_exception(f.exception())
                else:
                    result.set_result(f.result())

            fut.add_done_callback(done)

        self.ioloop.add_callback(run)
        # Wait on the outcome apart from reading it: a TimeoutError that fn itself raised
        # must come out unchanged, not be taken for this wait's own timeout.
        done, _ = concurrent.futures.wait((result,), timeout)
        if not done:
            raise concurrent.futures.TimeoutError()
        return result.result()

    def decorate_callable(self, callable_: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap `callable_` so calling it runs it on the loop (its ``timeout`` kwarg bounds the wait)."""

        @functools.wraps(callable_)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            return self.call_in_ioloop(callable_, args, kwargs, kwargs.get("timeout"))

        decorated.__doc__ = (
            "Wrapped async call: runs on the ioloop and blocks until it (and any future it "
            "returns) is done.\n\n" + textwrap.dedent(callable_.__doc__ or "")
        )
        return decorated


class ThreadSafeMethodAttrWrapper:
    """Proxy whose callable attributes run on the loop through an :class:`IOLoopThreadWrapper`."""

    def __init__(self, subject: Any, ioloop_wrapper: IOLoopThreadWrapper) -> None:
        object.__setattr__(self, "__subject__", subject)
        object.__setattr__(self, "_ioloop_wrapper", ioloop_wrapper)

    __subject__: Any
    _ioloop_wrapper: IOLoopThreadWrapper

    def __getattr__(self, attr: str) -> Any:
        val = getattr(self.__subject__, attr)
        if callable(val) and not isinstance(val, type):
            return self._ioloop_wrapper.decorate_callable(val)
        return val

    def _getattr(self, attr: str) -> Any:
        """Read an attribute on the loop."""
        return self._ioloop_wrapper.call_in_ioloop(getattr, (self.__subject__, attr), {})

    def __dir__(self) -> list[str]:
        return dir(self.__subject__)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.__subject__!r}>"


class MappingProxy(Mapping[str, Any]):
    """Read-only view of a mapping that wraps each value on access."""

    def __init__(self, mapping: Mapping[str, Any], wrapper: Callable[[Any], Any]) -> None:
        self._mapping = mapping
        self._wrapper = wrapper

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._mapping))

    def __len__(self) -> int:
        return len(self._mapping)

    def __contains__(self, key: object) -> bool:
        return key in self._mapping

    def __getitem__(self, key: str) -> Any:
        return self._wrapper(self._mapping[key])


class AttrMappingProxy(MappingProxy):
    """:class:`MappingProxy` whose keys are also attributes."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        try:
            return self[attr]
        except KeyError:
            raise AttributeError(attr) from None

    def __dir__(self) -> list[str]:
        return list(self.keys())


class ThreadSafeKATCPSensorWrapper(ThreadSafeMethodAttrWrapper):
    """Thread-safe :class:`~katcpx.resource.KATCPSensor`: ``wait``, ``get_value`` ... block."""

    @property
    def sampling_strategy(self) -> Any:
        """The memorised strategy (read on the loop)."""
        return self._getattr("sampling_strategy")


class ThreadSafeKATCPClientResourceRequestWrapper(ThreadSafeMethodAttrWrapper):
    """Thread-safe request: calling it blocks and returns the :class:`KATCPReply`."""

    def __init__(self, subject: Any, ioloop_wrapper: IOLoopThreadWrapper) -> None:
        super().__init__(subject, ioloop_wrapper)
        # help(res.req.x) shows the device's help, as katcp-python's wrapper does.
        object.__setattr__(self, "__doc__", getattr(subject, "__doc__", None))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        subject: KATCPRequest = self.__subject__
        return self._ioloop_wrapper.call_in_ioloop(subject, args, kwargs, kwargs.get("timeout"))


class ThreadSafeKATCPClientGroupWrapper(ThreadSafeMethodAttrWrapper):
    """Thread-safe :class:`~katcpx.resource.ClientGroup`."""

    def __iter__(self) -> Iterator[ThreadSafeKATCPClientResourceWrapper]:
        return iter(self.clients)

    def __getitem__(self, index: int) -> ThreadSafeKATCPClientResourceWrapper:
        return self.clients[index]

    def __len__(self) -> int:
        return len(self.__subject__)

    @property
    def req(self) -> AttrMappingProxy:
        """The group requests; calling one blocks and returns the :class:`GroupResults`."""
        return AttrMappingProxy(
            self.__subject__.req,
            functools.partial(
                ThreadSafeKATCPClientResourceRequestWrapper, ioloop_wrapper=self._ioloop_wrapper
            ),
        )

    @property
    def clients(self) -> list[ThreadSafeKATCPClientResourceWrapper]:
        """The members, wrapped."""
        return [
            ThreadSafeKATCPClientResourceWrapper(c, self._ioloop_wrapper)
            for c in self.__subject__.clients
        ]


class ThreadSafeKATCPClientResourceWrapper(ThreadSafeMethodAttrWrapper):
    """Thread-safe resource or container: methods block, sub-objects are wrapped too.

    It also has :meth:`shutdown` (and context-manager use) when made by
    :func:`threadsafe_resource`, which owns the loop thread.
    """

    def __init__(
        self,
        subject: Any,
        ioloop_wrapper: IOLoopThreadWrapper,
        ioloop_manager: IOLoopManager | None = None,
    ) -> None:
        super().__init__(subject, ioloop_wrapper)
        object.__setattr__(self, "_ioloop_manager", ioloop_manager)

    _ioloop_manager: IOLoopManager | None

    def _wrap(self, val: Any) -> Any:
        if isinstance(val, (KATCPClientResource, KATCPClientResourceContainer)):
            return ThreadSafeKATCPClientResourceWrapper(val, self._ioloop_wrapper)
        if isinstance(val, ClientGroup):
            return ThreadSafeKATCPClientGroupWrapper(val, self._ioloop_wrapper)
        if isinstance(val, KATCPSensor):
            return ThreadSafeKATCPSensorWrapper(val, self._ioloop_wrapper)
        if isinstance(val, KATCPRequest):
            return ThreadSafeKATCPClientResourceRequestWrapper(val, self._ioloop_wrapper)
        return val

    def __getattr__(self, attr: str) -> Any:
        return self._wrap(super().__getattr__(attr))

    @property
    def sensor(self) -> AttrMappingProxy:
        """The sensors, wrapped."""
        return AttrMappingProxy(self.__subject__.sensor, self._wrap)

    @property
    def op(self) -> Any:
        """The device's long-running operations, with blocking calls: ``res.op.slew(10, 45)``."""
        return self.op_accessor()

    def op_accessor(self, *, sync: bool | None = None, timeout: float | None = 5.0) -> Any:
        """A new operations accessor: blocking (unless `sync` is False), run on the loop."""
        from ..ops import SyncOpAccessor  # operations load the server side: import on first use

        accessor = self.__subject__.op_accessor(sync=False, timeout=timeout)
        if sync is False:
            return accessor
        return SyncOpAccessor(accessor, self._ioloop_wrapper.call_in_ioloop)

    @property
    def sensors(self) -> AttrMappingProxy:
        """Alias of :attr:`sensor`."""
        return self.sensor

    @property
    def req(self) -> AttrMappingProxy:
        """The requests, wrapped: calling one blocks and returns the :class:`KATCPReply`."""
        return AttrMappingProxy(self.__subject__.req, self._wrap)

    @property
    def groups(self) -> AttrMappingProxy:
        """The groups of a container, wrapped."""
        return AttrMappingProxy(getattr(self.__subject__, "groups", {}), self._wrap)

    @property
    def children(self) -> AttrMappingProxy:
        """The children of a container, wrapped."""
        return AttrMappingProxy(self.__subject__.children, self._wrap)

    @property
    def parent(self) -> Any:
        """The parent container, wrapped (or None)."""
        parent = self.__subject__.parent
        return None if parent is None else self._wrap(parent)

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop the resource, wait until it has stopped and end the loop thread it runs on.

        Only for wrappers made by :func:`threadsafe_resource`; others just stop the resource.
        """
        subject = self.__subject__

        async def stop() -> None:
            subject.stop()
            stopped = subject.until_stopped(timeout)
            if isinstance(stopped, dict):
                await asyncio.gather(*stopped.values(), return_exceptions=True)
            else:
                await stopped

        manager = self._ioloop_manager
        if manager is None:
            self._ioloop_wrapper.call_in_ioloop(stop, (), {}, timeout)
            return
        manager.stop(callback=stop).result(None if timeout is None else timeout + TIMEOUT_GRACE)
        manager.join(timeout)

    def __enter__(self) -> ThreadSafeKATCPClientResourceWrapper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def threadsafe_resource(
    spec_or_resource: dict[str, Any] | KATCPClientResource | KATCPClientResourceContainer,
    sync_timeout: float | None = 10.0,
    logger: logging.Logger = log,
) -> ThreadSafeKATCPClientResourceWrapper:
    """Start a resource on a new loop thread and return a blocking, thread-safe wrapper.

    Parameters
    ----------
    spec_or_resource
        A resource spec (a container spec if it has a ``clients`` key), or an unstarted
        resource / container.
    sync_timeout
        Seconds to wait until synced before returning (None or 0: don't wait).
    logger
        Logger for resources made from a spec.

    Returns
    -------
    ThreadSafeKATCPClientResourceWrapper
        Call :meth:`~ThreadSafeKATCPClientResourceWrapper.shutdown` when done (or use it
        as a context manager).

    Raises
    ------
    TimeoutError
        If the resource did not sync within `sync_timeout` (it is shut down first).
    """
    if isinstance(spec_or_resource, dict):
        subject: KATCPClientResource | KATCPClientResourceContainer
        if "clients" in spec_or_resource:
            subject = KATCPClientResourceContainer(spec_or_resource, logger=logger)
        else:
            subject = KATCPClientResource(spec_or_resource, logger=logger)
    else:
        subject = spec_or_resource
    manager = IOLoopManager()
    ioloop = manager.get_ioloop()
    manager.start(timeout=10.0)
    subject.set_ioloop(ioloop)
    ioloop_wrapper = IOLoopThreadWrapper(ioloop)
    wrapper = ThreadSafeKATCPClientResourceWrapper(subject, ioloop_wrapper, manager)
    ioloop_wrapper.call_in_ioloop(subject.start, (), {})
    if sync_timeout:
        try:
            ioloop_wrapper.call_in_ioloop(subject.until_synced, (sync_timeout,), {}, sync_timeout)
        except (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError):
            wrapper.shutdown()
            raise
    return wrapper
