"""``critic score`` (corpora on disk) and ``critic serve`` (HTTP on Ray Serve)."""

from __future__ import annotations

import argparse
import sys

EXIT_ROW_ERRORS = 3


def register(commands: argparse._SubParsersAction) -> None:
    _register_score(commands)
    _register_serve(commands)


def _register_serve(commands: argparse._SubParsersAction) -> None:
    from critic.serve.app import ServeOptions

    d = ServeOptions()
    parser = commands.add_parser(
        "serve",
        help="serve a bundle over HTTP on Ray Serve (POST /predict, GET /healthz, GET /model)",
        description="Run a Ray Serve application for a bundle: POST /predict "
        '{"texts": [...]} returns {"probabilities": [...], "labels": [...]}; GET /healthz; GET '
        "/model (bundle metadata). Requests from many clients are batched together "
        "(--max-batch-size requests, waiting at most --batch-wait-ms). Invalid requests get a "
        "4xx with the reason; beyond --max-ongoing per replica plus --max-queued waiting, "
        "requests get 503 instead of piling up. Starts an embedded Ray unless run inside a Ray "
        "job (or with RAY_ADDRESS). Ctrl-C stops it.",
    )
    parser.add_argument(
        "--model", required=True, metavar="BUNDLE", help="bundle folder (path or storage URI)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--replicas", type=int, default=d.replicas, help="model replicas")
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
        help="how long a batch waits for more requests",
    )
    parser.add_argument("--max-texts", type=int, default=d.max_texts, help="texts per request")
    parser.add_argument("--max-chars", type=int, default=d.max_chars, help="characters per text")
    parser.add_argument(
        "--max-ongoing",
        type=int,
        default=d.max_ongoing_requests,
        help="requests a replica runs at once",
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
        "--threads", type=int, help="inference threads per replica (default: cores / replicas)"
    )
    parser.add_argument("--variant", default=d.variant, help="bundle model variant (fp32, int8)")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=d.device,
        help="onnxruntime device; auto takes CUDA when there is one, else the CPU",
    )
    parser.add_argument(
        "--proxies",
        choices=["head", "every-node"],
        default="head",
        help="where Ray Serve runs HTTP proxies. head (default): one, on the head node, so "
        "--max-ongoing / --max-queued bound the whole cluster; every-node: clients may call "
        "any node, and each node's proxy admits up to those limits",
    )
    parser.add_argument("--num-cpus", type=int, help="CPUs of an embedded Ray (default: all)")
    parser.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import signal
    import time

    from critic.bundle import load_bundle
    from critic.cluster import connect_ray, joins_a_cluster
    from critic.serve.app import ServeOptions, build_app

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
    )
    options.validate()
    refuse_a_busy_port(args.host, args.port)
    connect_ray(args.num_cpus)
    from ray import serve

    from critic.console import quiet_loggers

    quiet_loggers()  # Ray Serve sets its logger's level when it is imported

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    serve.start(
        proxy_location="HeadOnly" if args.proxies == "head" else "EveryNode",
        http_options={"host": args.host, "port": args.port},
        controller_options={"runtime_env": {"env_vars": options.proxy_env()}},
    )
    try:
        try:
            serve.run(build_app(bundle, options), name="critic", route_prefix="/")
        except RuntimeError as e:
            if "Deploying application" not in str(e):
                raise
            app = serve.status().applications.get("critic")
            report = "\n".join(d.message for d in app.deployments.values()) if app else ""
            reason = replica_error(report or str(e))
            raise ValueError(f"the model replica could not start: {reason}") from None
        print(
            f"critic serve: {bundle.meta['model'].get('family')} model at "
            f"http://{args.host}:{args.port} (POST /predict, GET /healthz, GET /model); "
            "Ctrl-C stops",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        for sig in (signal.SIGTERM, signal.SIGINT):  # the first one stops; a second waits
            signal.signal(sig, signal.SIG_IGN)
        print("critic serve: stopping", flush=True)
    finally:
        if joins_a_cluster():
            serve.shutdown()  # the cluster stays; the application and its proxies go
        else:  # an embedded Ray: ending it ends Serve, without Serve's shutdown warnings
            import ray

            ray.shutdown()
    return 0


def replica_error(report: str) -> str:
    """The replica's own exception out of Ray Serve's deployment report (tracebacks of
    Ray's frames around it): its last ``SomeError: why`` line, without the module path."""
    from critic.cluster import error_line

    line = error_line(report)
    if line is None:
        lines = report.strip().splitlines()
        line = lines[-1] if lines else "unknown (see the Ray Serve controller log)"
    return line[:500]


def refuse_a_busy_port(host: str, port: int) -> None:
    """An error when something already listens on host:port (Ray Serve's proxy binds with
    SO_REUSEPORT, so a second server would silently share the port with the first)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not busy
        try:
            probe.bind((host, port))
        except OSError as e:
            raise OSError(
                f"cannot listen on {host}:{port} ({e.strerror}); is another critic serve "
                "running there? Stop it or pick another --port"
            ) from None


def _register_score(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "score",
        help="score a corpus on disk (Parquet, CSV/TSV, JSON Lines, text, aclImdb) with a bundle",
        description="Score every review of the inputs with an exported bundle and write id, "
        "probability, label and error (plus --keep-columns) as shards under OUTPUT, in bounded "
        "memory. Exactly once: re-running the same command after a crash or kill skips the "
        "shards already written and ends with exactly the rows of an uninterrupted run; a "
        "changed model or input is refused. Unreadable rows (null, non-text, invalid UTF-8, "
        "broken JSON lines) are written with their error, never dropped. Exit code 0: all "
        f"rows scored; {EXIT_ROW_ERRORS}: some rows have errors; 2: the job could not run.",
    )
    parser.add_argument(
        "--model", required=True, metavar="BUNDLE", help="bundle folder (path or storage URI)"
    )
    parser.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH_OR_URI",
        help="files, folders or globs: local paths or storage URIs (s3://bucket/reviews/*.parquet)",
    )
    parser.add_argument(
        "--output", required=True, metavar="PATH_OR_URI", help="output folder (path or URI)"
    )
    parser.add_argument(
        "--format", choices=["parquet", "csv", "jsonl"], default="parquet", help="shard format"
    )
    parser.add_argument("--text-column", default="text", help="column with the review")
    parser.add_argument(
        "--id-column",
        help="column copied to `id`, as text (default: the row's position across the inputs, as "
        "text)",
    )
    parser.add_argument(
        "--keep-columns",
        nargs="*",
        default=[],
        metavar="NAME[:NEW_NAME]",
        help="input columns copied to the output, NAME:NEW_NAME to rename one (for "
        "a name that clashes with id, probability, label or error)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="rows per inference call")
    parser.add_argument(
        "--threads", type=int, default=None, help="inference threads (default: all cores)"
    )
    parser.add_argument("--shard-rows", type=int, default=20_000, help="rows per output shard")
    parser.add_argument("--variant", default="fp32", help="bundle model variant (fp32, int8)")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="onnxruntime device; auto takes CUDA when there is one, else the CPU",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process; ray: Ray Data on the cluster of a Ray job (or RAY_ADDRESS), "
        "else an embedded local Ray",
    )
    parser.add_argument("--actors", type=int, help="ray engine: scoring actors (CPUs or GPUs)")
    parser.add_argument("--num-cpus", type=int, help="ray engine: CPUs of an embedded Ray")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from critic.serve.score import ScoreOptions, count_noun, expand_inputs, score_corpus

    inputs = expand_inputs(args.input)
    options = ScoreOptions(
        text_column=args.text_column,
        id_column=args.id_column,
        keep_columns=tuple(args.keep_columns),
        format=args.format,
        shard_rows=args.shard_rows,
        variant=args.variant,
    )
    options.validate()
    if args.engine == "ray":  # the actors load the model; this process only needs the bundle
        from critic.bundle import load_bundle
        from critic.cluster import connect_ray
        from critic.serve.score_ray import score_corpus_ray

        bundle = load_bundle(args.model)
        connect_ray(args.num_cpus)
        summary = score_corpus_ray(
            bundle,
            inputs,
            args.output,
            options,
            actors=args.actors,
            batch_size=args.batch_size,
            device=args.device,
        )
    else:
        from critic.serve import Runtime

        runtime = Runtime.load(
            args.model,
            variant=args.variant,
            device=args.device,
            batch_size=args.batch_size,
            threads=args.threads,
        )
        summary = score_corpus(runtime, inputs, args.output, options, progress=args.progress)
    print(f"critic score: {summary.line()}")
    if summary.errors:
        print(
            f"critic score: {count_noun(summary.errors, 'row')} could not be scored; see the "
            "`error` column",
            file=sys.stderr,
        )
        return EXIT_ROW_ERRORS
    return 0
