"""The ``vecmon`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from monitor import __version__
from monitor.config import Config, DatabaseTarget
from monitor.config_queries import plans_for_target
from monitor.loader import ConfigError, load_config
from monitor.logs import setup_logging
from monitor.shard import SHARD_ENV, set_shard

log = logging.getLogger("vecmon")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _add_logging(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--log-level/--log-format, accepted before and after the subcommand (``vecmon run -c x --log-level
    debug``); only the top-level parser sets defaults, so a value given before the subcommand survives."""
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        default="info" if defaults else argparse.SUPPRESS,
                        help="least severe log messages shown (default: info)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text" if defaults else argparse.SUPPRESS,
                        help="text lines, or one JSON object per line for log shippers (default: text)")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=os.environ.get("VECMON_CONFIG"),
                        help="config file (default: $VECMON_CONFIG)")


def _subparser_class(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    class SubcommandParser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:  # argparse.ArgumentParser's
            kwargs.setdefault("parents", [common])
            super().__init__(*args, **kwargs)

    return SubcommandParser


def _add_shard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard", metavar="I/N", help="monitor only shard I of N of the targets (overrides "
                        "daemon.shard; same as $VECMON_SHARD)")


def _add_query_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extend.query-path", dest="extend_query_path", metavar="FILE",
                        help="a postgres_exporter queries.yaml to run as well (overrides extend_query_path)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vecmon", description="Observability and SLO monitoring for "
                                     "vector-search and RAG stacks (PostgreSQL + pgvector, model APIs).")
    parser.add_argument("--version", action="version", version=f"vecmon {__version__}")
    _add_logging(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _add_logging(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_subparser_class(common))

    run = sub.add_parser("run", help="run the daemon: collect on schedule and serve /metrics")
    _add_config(run)
    run.add_argument("--listen", "--web.listen-address", dest="listen",
                     help="HOST:PORT to serve on (overrides daemon.listen); :PORT listens on every address")
    run.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                     help="TLS and basic auth settings in Prometheus exporter-toolkit's format (re-read on change)")
    _add_shard(run)
    _add_query_path(run)

    collect = sub.add_parser("collect", help="run every enabled collector once and print the exposition")
    _add_config(collect)
    _add_shard(collect)
    _add_query_path(collect)

    check = sub.add_parser("check-config", help="validate a config file")
    _add_config(check)
    check.add_argument("--connect", action="store_true",
                       help="also connect to every enabled database target: report why one cannot be reached, "
                            "and warn when the monitoring role could write")
    _add_query_path(check)

    generate = sub.add_parser("generate", help="write Prometheus rules, Alertmanager config and Grafana dashboards")
    _add_config(generate)
    generate.add_argument("-o", "--output", default="generated", help="output directory (default: generated)")
    generate.add_argument("--kubernetes", action="store_true", help="also write OUTPUT/kubernetes/ (manifests)")

    demo = sub.add_parser("demo", help="start an embedded PostgreSQL with pgvector, load a corpus and monitor it")
    demo.add_argument("--data-dir", default=os.environ.get("VECMON_DEMO_DIR", ".vecmon-demo"),
                      help="where the demo keeps its database and generated files (default: .vecmon-demo)")
    demo.add_argument("--listen", default="127.0.0.1:9765", help="HOST:PORT for vecmon (default 127.0.0.1:9765)")
    demo.add_argument("--pg-port", type=int, default=None,
                      help="port for the embedded PostgreSQL (default: the one it had last time, else a free one)")
    demo.add_argument("--rows", type=int, default=50000, help="corpus size on first run (default 50000)")
    demo.add_argument("--dim", type=int, default=384, help="vector dimensions on first run (default 384)")

    imports = sub.add_parser("import", help="convert another exporter's config into vecmon config")
    imports.add_argument("format", choices=["query-exporter", "sloth"],
                         help="the format of FILE (sloth: Sloth's prometheus/v1 SLO spec)")
    imports.add_argument("files", nargs="+", metavar="FILE", help="the config file(s) to convert")
    imports.add_argument("-o", "--output", help="write the vecmon config here (default: standard output)")
    parser.epilog = ("run, collect and check-config also take --collector.NAME / --no-collector.NAME "
                     "to enable or disable a database collector on every target")
    return parser


def _load(args: argparse.Namespace, secrets: bool = True, require_mapping: bool = False) -> Config:
    if not args.config:
        print("vecmon: no config file: pass -c FILE or set VECMON_CONFIG", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    shard = getattr(args, "shard", None) or os.environ.get(SHARD_ENV)
    if shard:
        try:
            set_shard(shard)  # in the environment, so it also holds after a reload
        except ValueError as exc:
            print(f"vecmon: shard: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
    try:
        return load_config(args.config, secrets=secrets, require_mapping=require_mapping,
                           overrides=getattr(args, "overrides", None) or None)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{args.config}: OK ({describe_jobs(config)})")
    if getattr(args, "connect", False):
        return _check_connections(config)
    return EXIT_OK


def describe_jobs(config: Config) -> str:
    """What a config schedules, e.g. ``1 database target (10 collector jobs), 2 endpoints, 1 budget``."""
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'' if n == 1 else 's'}"

    databases = config.enabled_databases()
    jobs = sum(len(db.enabled_collectors()) for db in databases)
    parts = [f"{count(len(databases), 'database target')} ({count(jobs, 'collector job')})"]
    queries = sum(len(plans_for_target(config, db)) for db in databases)
    if queries:
        parts.append(count(queries, "custom query job"))
    for what, items in (("endpoint", config.endpoints), ("cost API", config.cost_apis), ("budget", config.budgets),
                        ("Redis target", config.redis), ("application check", config.applications)):
        enabled = [item for item in items if item.enabled]
        if enabled:
            parts.append(count(len(enabled), what))
    return ", ".join(parts)


def _check_connections(config: Config) -> int:
    """One direct, bounded connection attempt per enabled database target (concurrently)."""
    import threading

    from monitor.pg import DatabaseConnector
    from monitor.pg_checks import AccessReport

    targets = config.enabled_databases()
    reports: dict[str, AccessReport] = {}

    def check(target: DatabaseTarget) -> None:
        reports[target.name] = DatabaseConnector(target).check_access()

    threads = [threading.Thread(target=check, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = False
    for target in targets:
        report = reports[target.name]
        if not report.reachable:
            failed = True
            print(f"{target.name}: cannot connect ({report.reason}): {report.message}")
            continue
        print(f"{target.name}: connected: {report.message}")
        for write in report.writes:
            print(f"{target.name}: warning: the monitoring role could write: {write} "
                  "(vecmon's transactions are read-only; a role with only pg_monitor is enough)")
    return EXIT_FAILED if failed else EXIT_OK


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
    from monitor.webconfig import WebConfig

    config = _load(args, require_mapping=True)
    try:
        web = WebConfig(args.web_config_file) if args.web_config_file else None
        daemon = Daemon(config, Path(args.config), listen=args.listen, web_config=web,
                        overrides=args.overrides or None)
    except ConfigError as exc:  # nothing to monitor, or a bad web config
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
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

    config = _load(args, secrets=False)  # rules and dashboards never contain secrets, so none are needed
    kubernetes_from = Path(args.config) if args.kubernetes else None
    try:
        written = generate_all(config, Path(args.output), kubernetes_from=kubernetes_from)
    except ValueError as exc:  # e.g. alerts.render.RunbookBaseMissing: nothing was written
        print(f"vecmon generate: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for path in written:
        print(path)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return run_demo(Path(args.data_dir), listen=args.listen, rows=args.rows, dim=args.dim, pg_port=args.pg_port)


def cmd_import(args: argparse.Namespace) -> int:
    if args.format == "sloth":
        from monitor.import_sloth import run_import_sloth

        return run_import_sloth(args.files, args.output)
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
