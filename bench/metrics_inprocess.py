"""The server's own CPU per request, metrics off and on, in one process (no sockets).

Two identical katcpx servers run on this process's event loop, one with metrics on. Each gets
a connection whose transport is a stand-in that keeps nothing: pipelined ``?watchdog[id]``
lines are fed to the server's protocol in bursts of 128 (what one read might bring) and the
loop runs until every reply has been written. So the timing covers the whole server path
(parse, queue, dispatch, handler, reply formatting, counting) and nothing else: no kernel, no
load generator. The two servers are timed in turn, round after round, and the result is the
median of the per-round ratios, which stays steady on a shared machine.

Used by ``bench_metrics.py``; run alone with ``python bench/metrics_inprocess.py``.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from typing import Any

from katcpx import DeviceServer
from katcpx.transport import KatcpProtocol

BURST = 128


class Quiet(DeviceServer):
    VERSION_INFO = ("quiet", 1, 0)
    BUILD_INFO = ("quiet", 1, 0, "")

    def setup_sensors(self) -> None:
        pass


class NullTransport(asyncio.Transport):
    """Takes writes and counts replies; never blocks, never sends."""

    def __init__(self) -> None:
        super().__init__()
        self.replies = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.replies += bytes(data).count(b"!watchdog")

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


async def drive(proto: KatcpProtocol, transport: NullTransport, requests: int) -> float:
    """Feed `requests` pipelined requests; return the CPU seconds until all were answered."""
    bursts = [
        b"".join(b"?watchdog[%d]\n" % (i + 2) for i in range(start, start + BURST))
        for start in range(0, requests, BURST)
    ]
    transport.replies = 0
    # This thread's CPU time, not the wall clock: time the machine gave to other processes
    # is not counted against either server.
    start = time.thread_time()
    for n, burst in enumerate(bursts, 1):
        proto.data_received(burst)
        while transport.replies < BURST * n:
            await asyncio.sleep(0)
    return time.thread_time() - start


async def measure(rounds: int, requests: int, control: bool = False) -> dict[str, list[float]]:
    """Requests per second of server CPU for each server, round by round."""
    servers: dict[str, tuple[Quiet, KatcpProtocol, NullTransport]] = {}
    for name in ("metrics off", "metrics on"):
        server = Quiet("127.0.0.1", 0)
        server.set_concurrency_options(thread_safe=False, handler_thread=False)
        server.set_ioloop(asyncio.get_running_loop())
        if name == "metrics on" and not control:
            server.enable_metrics(name="inprocess")
        server.start()
        await server.until_running(10)
        proto = server.new_connection().protocol
        transport = NullTransport()
        proto.connection_made(transport)
        await asyncio.sleep(0.05)  # let on_client_connect finish
        servers[name] = (server, proto, transport)
    rates: dict[str, list[float]] = {name: [] for name in servers}
    gc.collect()
    gc.freeze()
    try:
        for round_no in range(rounds):
            order = list(servers.items())
            if round_no % 2:
                order.reverse()
            for name, (_, proto, transport) in order:
                rates[name].append(requests / await drive(proto, transport, requests))
    finally:
        for server, proto, _ in servers.values():
            proto.connection_lost(None)
            server.stop()
    return rates


def run(
    rounds: int = 31, requests: int = 10240, control: bool = False
) -> tuple[dict[str, list[float]], float]:
    """Rates per round and the median per-round ratio (on / off; `control`: both off)."""
    rates = asyncio.run(measure(rounds, requests, control))
    ratio = statistics.median(
        a / b for a, b in zip(rates["metrics on"], rates["metrics off"], strict=True)
    )
    return rates, ratio


if __name__ == "__main__":
    rates, ratio = run(control="--control" in sys.argv)
    for name, values in rates.items():
        print(
            f"{name:12s} best {max(values):>10,.0f} req/s  median {statistics.median(values):>10,.0f}"
        )
    print(f"on/off, median of per-round ratios: {ratio:.3f}x")
