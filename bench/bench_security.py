"""TLS and access-control benchmark: what encryption and the policy check cost a katcpx server.

Three katcpx servers run in their own processes with the same device:

- ``plain``: plain TCP, no access policy (every client is admin, so no check runs);
- ``tls``: the same over TLS (certificates made with trustme at start);
- ``policy``: plain TCP with an access policy that makes the benchmark client ``control``,
  so every request goes through the role check.

An aiokatcp server runs beside them as the reference, as in the other benchmarks (neither
aiokatcp nor katcp-python has TLS or access control, so only katcpx has the other rows).
One load generator drives each in turn with pipelined ``?watchdog`` requests with message
ids on one connection, and the rounds are interleaved so load from elsewhere hits all alike.
Ratios are the median over rounds of each round's ratio.

Targets: the policy check costs under 5% of pipelined throughput (``policy`` >= 0.95x
``plain``). TLS costs what ``ssl`` costs: its ratio is printed, not judged.

Run from the repository root: ``python bench/bench_security.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
from pathlib import Path

from _peers import Row, check_target, print_table
from bench_server import ServerProcess, pipelined

HERE = Path(__file__).resolve()
MODES = ("plain", "tls", "policy")


def serve(mode: str, certs: str) -> None:
    """Run one katcpx server (`mode`) until stdin closes; print its port as JSON."""
    from katcpx.server import DeviceServer
    from katcpx.server.access import AccessPolicy, Grant, Role
    from katcpx.tls import server_context

    class Bench(DeviceServer):
        VERSION_INFO = ("bench", 1, 0)
        BUILD_INFO = ("bench", 1, 0, "")

        def setup_sensors(self) -> None:
            pass

    kwargs: dict = {}
    if mode == "tls":
        kwargs["ssl_context"] = server_context(f"{certs}/server.pem", f"{certs}/server.key")
    if mode == "policy":
        kwargs["access_policy"] = AccessPolicy("read", [Grant(Role.CONTROL, address="127.0.0.0/8")])
    server = Bench("127.0.0.1", 0, **kwargs)
    server.set_concurrency_options(thread_safe=False, handler_thread=False)
    server.start(timeout=10)
    print(json.dumps({"port": server.bind_address[1]}), flush=True)
    sys.stdin.read()
    server.stop().result(10)
    server.join(10)


def make_certs(directory: str) -> None:
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(f"{directory}/ca.pem")
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(f"{directory}/server.key")
    with open(f"{directory}/server.pem", "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--certs", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.certs)
        return 0
    count = 5_000 if args.quick else 30_000
    rounds = args.rounds or (3 if args.quick else 9)
    with tempfile.TemporaryDirectory() as certs:
        make_certs(certs)
        client_ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
        servers = {
            mode: ServerProcess(
                mode, [sys.executable, str(HERE), "--serve", mode, "--certs", certs]
            )
            for mode in MODES
        }
        servers["aiokatcp"] = ServerProcess(
            "aiokatcp", [sys.executable, str(HERE.parent / "servers" / "aiokatcp_server.py")]
        )
        rates: dict[str, list[float]] = {name: [] for name in servers}
        # plain and policy are timed A-B-B-A in each round, so drift in the machine's load
        # hits both alike; their per-round ratio uses the sum of the two timings of each.
        order = ["plain", "policy", "policy", "plain", "tls", "aiokatcp"]
        try:
            for _ in range(rounds):
                got: dict[str, list[float]] = {name: [] for name in servers}
                for name in order:
                    ctx = client_ctx if name == "tls" else None
                    got[name].append(asyncio.run(pipelined(servers[name].port, 1, count, tls=ctx)))
                for name, values in got.items():
                    rates[name].append(statistics.fmean(values))
        finally:
            for proc in servers.values():
                proc.stop()

    def ratio(name: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(rates[name], rates[base], strict=True))

    print_table(
        f"pipelined ?watchdog, 1 connection, {count} requests (best of {rounds} rounds)",
        [Row(name, max(values)) for name, values in rates.items()],
        baseline="plain",
        unit="req/s",
    )
    tls_ratio = ratio("tls", "plain")
    policy_ratio = ratio("policy", "plain")
    print(f"\n  TLS / plain TCP (median of per-round ratios): {tls_ratio:.2f}x")
    print(f"  policy check / none (median of per-round ratios): {policy_ratio:.3f}x")
    passed = check_target("policy check costs < 5% of pipelined throughput", policy_ratio, 0.95)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
