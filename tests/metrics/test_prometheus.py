"""End to end with a real Prometheus (Debian's package): it scrapes katcpx-exporter in front
of ``katcpx-sim site`` and the simulator's own metrics port, and its HTTP API shows the
sensors, katcpx's request counters, and a sensor change."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from katcpx.client import AsyncClient

from .conftest import eventually
from .procs import Prometheus, start_exporter, start_sim

E2E_TIMEOUT = 60.0
SETPOINT = 'katcp_sensor_value{job="exporter",device="psu",sensor="voltage-setpoint"}'


async def test_prometheus_scrapes_exporter_and_sim(tmp_path: Path) -> None:
    sim, ports, sim_metrics = await start_sim("--speed", "10", "--seed", "1", "--channels", "64")
    procs = [sim]
    try:
        exporter, exporter_metrics = await start_exporter(
            {"psu": ports["psu"], "weather": ports["weather"]}
        )
        procs.append(exporter)
        prom = await Prometheus.start(tmp_path, {"exporter": exporter_metrics, "sim": sim_metrics})
        procs.append(prom.proc)
        drain = asyncio.ensure_future(prom.drain())
        try:

            async def setpoint() -> float | None:
                result = await prom.query(SETPOINT)
                return float(result[0]["value"][1]) if result else None

            async def requests_counted() -> list | None:
                # The exporter's ?sensor-value, counted by the psu's own server metrics.
                return await prom.query(
                    'katcpx_server_requests_total{job="sim",server="psu",'
                    'request="sensor-value",result="ok"} > 0'
                )

            before = await eventually(setpoint, E2E_TIMEOUT, "a sensor value in Prometheus")
            assert before is not None
            assert await eventually(requests_counted, E2E_TIMEOUT, "a request counter")
            up = await prom.query('katcp_device_up{job="exporter"}')
            assert {r["metric"]["device"]: r["value"][1] for r in up} == {
                "psu": "1",
                "weather": "1",
            }
            wind = await prom.query('katcp_sensor_info{device="weather",sensor="wind-speed"}')
            assert wind and wind[0]["metric"]["units"] == "m/s"

            target = 17.5 if before != 17.5 else 12.5
            async with await AsyncClient.connect("127.0.0.1", ports["psu"]) as client:
                await client.call("voltage", target)

            async def changed() -> bool:
                return await setpoint() == target

            assert await eventually(changed, E2E_TIMEOUT, "the changed setpoint in Prometheus")
        finally:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
    finally:
        codes = {p.name: await p.stop() for p in reversed(procs)}
    # The katcpx processes exit cleanly on SIGTERM.
    assert codes["katcpx-sim"] == 0 and codes.get("katcpx-exporter", 0) == 0, codes
