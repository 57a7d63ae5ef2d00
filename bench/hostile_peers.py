"""How long a hostile peer holds one call: a model probe (embedding and re-ranker), a cost-API
poll and a Redis collection, each with ``--timeout`` (default 5 s), against local peers that
trickle the headers or the body at ``--trickle`` seconds per byte (default 1 byte/s).

All cases run at once (they mostly wait), each given up after ``--cap`` seconds. Prints the
seconds each call was held, the outcome, and the ratio to the timeout (1.0 = bounded).

    python bench/hostile_peers.py [--timeout 5] [--trickle 1] [--cap 600]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_providers import FakeProvider, Fault, Probe  # noqa: E402
from test_faults_api import INFO, CostPoll, FakeRespPeer  # noqa: E402
from test_providers_cost import cost_fake  # noqa: E402

from collectors.base import CollectContext  # noqa: E402
from collectors.redis_cache import RedisCacheCollector  # noqa: E402
from collectors.settings.redis import RedisTarget  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--trickle", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--cap", type=float, default=600.0, help="give a call up after this many seconds")
    args = parser.parse_args()
    timeout, trickle = f"{args.timeout:g}s", args.trickle
    headers, body = Fault(trickle=trickle), Fault(trickle=trickle, trickle_body_only=True)
    peers: list = []
    cases: dict[str, object] = {}

    def probe(provider: str, kind: str, fault: Fault):
        fake = FakeProvider(provider).start()
        fake.default = fault
        peers.append(fake)
        p = Probe(fake, kind, timeout=timeout)
        return lambda: p.run().outcomes()

    def cost(fault: Fault):
        fake = cost_fake().start()
        fake.default = fault
        peers.append(fake)
        poll = CostPoll(fake, timeout=args.timeout)

        def call() -> dict:
            poll.run()
            return {api: {k: v for k, v in counts.items() if v} for api, counts in poll.state["polls"].items()}
        return call

    def redis(reply: bytes):
        peer = FakeRespPeer(reply, trickle).__enter__()
        peers.append(peer)
        target = RedisTarget.model_validate({"name": "cache", "port": peer.port, "password": "pw",
                                             "timeout": timeout})
        return lambda: RedisCacheCollector().collect(CollectContext("cache", target, state={}))

    cases["probe embedding, headers trickled"] = probe("openai", "embedding", headers)
    cases["probe embedding, body trickled"] = probe("openai", "embedding", body)
    cases["probe rerank, headers trickled"] = probe("cohere", "rerank", headers)
    cases["probe rerank, body trickled"] = probe("cohere", "rerank", body)
    cases["cost poll, headers trickled"] = cost(headers)
    cases["cost poll, body trickled"] = cost(body)
    cases["redis, reply trickled"] = redis(b"$%d\r\n%s\r\n" % (len(INFO), INFO))

    results: dict[str, tuple[float, str]] = {}

    def run(name: str, call) -> None:
        started = time.monotonic()
        try:
            outcome = str(call())
        except Exception as exc:  # noqa: BLE001 - reported
            outcome = f"{type(exc).__name__}: {exc}"
        results[name] = (time.monotonic() - started, outcome[:70])

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in cases.items()]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, args.cap - (time.monotonic() - started)))
    print(f"timeout {args.timeout:g}s, one byte every {trickle:g}s")
    print(f"{'case':<36} {'held s':>8} {'ratio':>6}  outcome")
    for name in cases:
        held, outcome = results.get(name, (args.cap, f"still held after --cap {args.cap:g}s"))
        print(f"{name:<36} {held:8.1f} {held / args.timeout:6.2f}  {outcome}")
    for peer in peers:
        peer.stopping.set()


if __name__ == "__main__":
    main()
