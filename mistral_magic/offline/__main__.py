"""`python -m mistral_magic.offline`: serve the offline Mistral API until interrupted."""

from __future__ import annotations

import argparse
import sys

from .faults import FaultPlan
from .server import OfflineServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mistral_magic.offline",
                                     description="Serve Mistral's API offline, with optional fault plans.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", help="bearer key to demand (default: random)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transcripts", help="folder of recordings with sidecar .txt transcripts "
                        "(default: the working folder)")
    for name, kind in (("ttft-ms", float), ("token-delay-ms", float), ("latency-ms", float),
                       ("rate-limit-rps", float), ("error-status", int), ("error-rate", float),
                       ("drop-stream-after", int), ("bad-json-rate", float),
                       ("batch-line-error-rate", float), ("answer-tokens", int)):
        parser.add_argument(f"--{name}", type=kind)
    parser.add_argument("--error-on-nth", type=int, nargs="+")
    parser.add_argument("--shuffle-embeddings", action="store_true", default=None,
                        help="list embeddings out of order, each with its index")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fields = {name: getattr(args, name) for name in FaultPlan.model_fields if getattr(args, name, None) is not None}
    fields.pop("seed", None)
    try:
        plan = FaultPlan(**fields)
    except ValueError as exc:
        print(f"error: invalid fault plan: {exc}", file=sys.stderr)
        return 2
    server = OfflineServer(host=args.host, port=args.port, api_key=args.api_key, faults=plan, seed=args.seed,
                           transcripts=args.transcripts)
    server.start()
    print(f"Offline Mistral API on {server.url}", flush=True)
    print(f"API key: {server.api_key}", flush=True)
    if fields:
        print(f"Fault plan: {plan.model_dump(include=set(fields))}", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
