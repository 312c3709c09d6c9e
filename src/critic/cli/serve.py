"""``critic serve``: a bundle behind HTTP, in this process (:mod:`critic.serve.local`) or on
Ray Serve (:mod:`critic.serve.server`)."""

from __future__ import annotations

import argparse

from .options import add_bundle_options


def register(commands: argparse._SubParsersAction) -> None:
    from critic.serve.options import ServeOptions

    d = ServeOptions()
    parser = commands.add_parser(
        "serve",
        help="serve a bundle over HTTP (POST /predict, GET /healthz, GET /model)",
        description="Serve a bundle over HTTP: POST /predict "
        '{"texts": [...]} returns {"probabilities": [...], "labels": [...]} (for a bundle with '
        'k > 2 labels, k probabilities per text in the order of "classes"); GET /healthz; GET '
        "/model (bundle metadata). Requests that arrive while the model is busy are scored "
        "together in its next call (at most --max-batch-size requests); a request alone is "
        "scored at once. Invalid requests get a 4xx with the reason; beyond --max-ongoing "
        "(per replica) plus --max-queued waiting, requests get 503 instead of piling up. "
        "--engine local (default) serves from this process; --engine ray runs --replicas on "
        "Ray Serve, on the cluster of a Ray job (or RAY_ADDRESS), else an embedded Ray. "
        "SIGTERM or Ctrl-C stops accepting, answers the requests under way and exits "
        "(the ray engine: every proxy drains, then Ray Serve stops).",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process, every core; ray: replicas on Ray Serve",
    )
    add_bundle_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--replicas", type=int, default=d.replicas, help="ray engine: model replicas"
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=d.max_batch_size,
        help="requests merged into one inference call",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=d.batch_wait_ms,
        help="how long a call waits for more requests before it starts (0: it does not)",
    )
    parser.add_argument("--max-texts", type=int, default=d.max_texts, help="texts per request")
    parser.add_argument("--max-chars", type=int, default=d.max_chars, help="characters per text")
    parser.add_argument(
        "--max-ongoing",
        type=int,
        default=d.max_ongoing_requests,
        help="requests the model works on at once (per replica)",
    )
    parser.add_argument(
        "--max-queued",
        type=int,
        default=d.max_queued_requests,
        help="requests admitted beyond what the replicas run; past that, an immediate 503 "
        "with Retry-After",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=d.max_body_bytes,
        help="largest request body in bytes; larger gets 413 before it is read",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=d.body_timeout_s,
        metavar="SECONDS",
        help="time for a request body to arrive after its headers; slower gets 408, and "
        "no replica is held meanwhile",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=d.header_timeout_s,
        metavar="SECONDS",
        help="time for a request's headers to arrive (from its first byte, or from the "
        "connection opening); slower gets 408 and the connection is closed",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="inference threads (default: every core; ray engine: cores / replicas per replica)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=d.drain_timeout_s,
        metavar="SECONDS",
        help="local engine: on SIGTERM or Ctrl-C, how long the requests under way may take "
        "before the server stops anyway",
    )
    parser.add_argument(
        "--proxies",
        choices=["head", "every-node"],
        default="head",
        help="ray engine: where Ray Serve runs HTTP proxies. head (default): one, on the "
        "head node, so --max-ongoing / --max-queued bound the whole cluster; every-node: "
        "one on the head and on each node holding a replica; clients may call any of them, "
        "and each node's proxy admits up to those limits",
    )
    parser.add_argument(
        "--num-cpus", type=int, help="ray engine: CPUs of an embedded Ray (default: all)"
    )
    parser.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from critic.bundle import load_bundle
    from critic.serve.options import ServeOptions

    bundle = load_bundle(args.model)  # refuse a bad bundle before starting anything
    if args.variant not in bundle.variants:
        raise ValueError(f"{args.model}: no {args.variant!r} model (has {list(bundle.variants)})")
    options = ServeOptions(
        replicas=args.replicas,
        max_batch_size=args.max_batch_size,
        batch_wait_ms=args.batch_wait_ms,
        max_texts=args.max_texts,
        max_chars=args.max_chars,
        max_ongoing_requests=args.max_ongoing,
        max_queued_requests=args.max_queued,
        max_body_bytes=args.max_body_bytes,
        body_timeout_s=args.body_timeout,
        header_timeout_s=args.header_timeout,
        threads=args.threads,
        variant=args.variant,
        device=args.device,
        drain_timeout_s=args.drain_timeout,
    )
    if args.engine == "local":
        from critic.serve.local import serve_locally

        serve_locally(bundle, options, host=args.host, port=args.port)
    else:
        from critic.serve.server import serve_on_ray

        serve_on_ray(
            bundle,
            options,
            host=args.host,
            port=args.port,
            proxies=args.proxies,
            num_cpus=args.num_cpus,
        )
    return 0
