"""The ``vecmon`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from prometheus_client import generate_latest

from monitor import __version__
from monitor.loader import ConfigError, load_config
from monitor.logs import setup_logging

log = logging.getLogger("vecmon")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=os.environ.get("VECMON_CONFIG"),
                        help="config file (default: $VECMON_CONFIG)")


def _add_query_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extend.query-path", dest="extend_query_path", metavar="FILE",
                        help="a postgres_exporter queries.yaml to run as well (overrides extend_query_path)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vecmon", description="Observability and SLO monitoring for "
                                     "vector-search and RAG stacks (PostgreSQL + pgvector, model APIs).")
    parser.add_argument("--version", action="version", version=f"vecmon {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon: collect on schedule and serve /metrics")
    _add_config(run)
    run.add_argument("--listen", help="HOST:PORT to serve on (overrides daemon.listen)")
    _add_query_path(run)

    collect = sub.add_parser("collect", help="run every enabled collector once and print the exposition")
    _add_config(collect)
    _add_query_path(collect)

    check = sub.add_parser("check-config", help="validate a config file")
    _add_config(check)
    _add_query_path(check)

    generate = sub.add_parser("generate", help="write Prometheus rules, Alertmanager config and Grafana dashboards")
    _add_config(generate)
    generate.add_argument("-o", "--output", default="generated", help="output directory (default: generated)")

    demo = sub.add_parser("demo", help="start an embedded PostgreSQL with pgvector, load a corpus and monitor it")
    demo.add_argument("--data-dir", default=os.environ.get("VECMON_DEMO_DIR", ".vecmon-demo"),
                      help="where the demo keeps its database and generated files (default: .vecmon-demo)")
    demo.add_argument("--listen", default="127.0.0.1:9765", help="HOST:PORT for vecmon (default 127.0.0.1:9765)")
    demo.add_argument("--rows", type=int, default=50000, help="corpus size on first run (default 50000)")
    demo.add_argument("--dim", type=int, default=384, help="vector dimensions on first run (default 384)")

    imports = sub.add_parser("import", help="convert another exporter's config into vecmon config")
    imports.add_argument("format", choices=["query-exporter"], help="the format of FILE")
    imports.add_argument("files", nargs="+", metavar="FILE", help="the config file(s) to convert")
    imports.add_argument("-o", "--output", help="write the vecmon config here (default: standard output)")
    parser.epilog = ("run, collect and check-config also take --collector.NAME / --no-collector.NAME "
                     "to enable or disable a database collector on every target")
    return parser


def _load(args: argparse.Namespace):
    if not args.config:
        print("vecmon: no config file: pass -c FILE or set VECMON_CONFIG", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    try:
        return load_config(args.config, overrides=getattr(args, "overrides", None) or None)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    from monitor.config_queries import plans_for_target

    jobs = sum(len(db.enabled_collectors()) for db in config.enabled_databases())
    queries = sum(len(plans_for_target(config, db)) for db in config.enabled_databases())
    print(f"{args.config}: OK ({len(config.databases)} database target(s), {jobs} database collector job(s), "
          f"{queries} custom query job(s))")
    return EXIT_OK


def cmd_collect(args: argparse.Namespace) -> int:
    from monitor.exposition import build_registry
    from monitor.scheduler import Runtime
    from monitor.snapshot import SnapshotStore

    config = _load(args)
    store = SnapshotStore()
    runtime = Runtime(config, store)
    try:
        results = runtime.run_once()
    finally:
        runtime.stop()
    sys.stdout.write(generate_latest(build_registry(store, config.daemon.stale_after)).decode())
    failed = sorted(f"{t}/{c}" for (t, c), result in results.items() if result in ("error", "timeout"))
    for entry in store.entries():
        if f"{entry.target}/{entry.collector}" in failed:
            print(f"vecmon: {entry.target}/{entry.collector} failed: {entry.last_error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon

    config = _load(args)
    try:
        daemon = Daemon(config, Path(args.config), listen=args.listen, overrides=args.overrides or None)
    except (OSError, ValueError) as exc:  # e.g. the listen address is taken or malformed
        print(f"vecmon: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    daemon.install_signal_handlers()
    daemon.start()
    if not daemon.serve_forever():
        # A job is stuck in a call that cannot be interrupted (an HTTP read, say); its thread
        # would hold the interpreter's exit. The stop is bounded by daemon.shutdown_timeout.
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from monitor.generate import generate_all

    config = _load(args)
    for path in generate_all(config, Path(args.output)):
        print(path)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(Path(args.data_dir), listen=args.listen, rows=args.rows, dim=args.dim)


def cmd_import(args: argparse.Namespace) -> int:
    from monitor.importers import run_import

    return run_import(args.files, args.output)


COMMANDS = {"run": cmd_run, "collect": cmd_collect, "check-config": cmd_check_config, "generate": cmd_generate,
            "demo": cmd_demo, "import": cmd_import}


def main(argv: list[str] | None = None) -> int:
    from monitor.cli_overrides import UsageError, overrides_from, split_collector_switches

    try:
        argv, switches = split_collector_switches(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(f"vecmon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    args = build_parser().parse_args(argv)
    args.overrides = overrides_from(args, switches)
    setup_logging(args.log_level, args.log_format)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
