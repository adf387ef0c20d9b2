"""The `receiver` command: serve, check."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.metadata
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop
from aiohttp import web

from receiver import (
    configuration,
    listener,
    logs,
    manifests,
    sendtest,
    server,
    settings,
    slocli,
    status,
)
from receiver.errors import ConfigError, JournalError
from receiver.slo import evaluation

logger = logging.getLogger(__name__)
PACKAGE = "selfheal-receiver"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="receiver", description="Self-healing for Kubernetes workloads."
    )
    parser.add_argument(
        "--version", action="version", version=f"receiver {importlib.metadata.version(PACKAGE)}"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument(
        "--config", type=Path, default=Path("config"), help="configuration dir (default: config)"
    )
    serve.add_argument("--host", help="listen address (default from settings: 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default from settings: 8080)")
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="validate a configuration directory")
    check.add_argument(
        "--config", type=Path, default=Path("config"), help="configuration dir (default: config)"
    )
    check.set_defaults(run=_check)

    slocli.add_commands(commands)
    status.add_command(commands)
    status.add_decision_commands(commands)
    sendtest.add_command(commands)
    manifests.add_command(commands)

    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


def _serve(args: argparse.Namespace) -> int:
    loaded = configuration.load(args.config)
    if loaded.configuration is None:
        # Not started on a configuration `receiver check` refuses: the same messages.
        for error in loaded.errors:
            print(error, file=sys.stderr)
        print(
            f"receiver: not starting: {len(loaded.errors)} problem(s) found in"
            f" {args.config} (`receiver check --config {args.config}` lists the same)",
            file=sys.stderr,
        )
        return 2
    config = loaded.configuration.settings
    logs.setup(format=config.log_format, level=config.log_level)
    try:
        app = server.create_app(loaded.configuration)
    except ConfigError as e:  # no credentials in this environment
        print(f"receiver: {e}", file=sys.stderr)
        print(
            f"receiver: run `receiver check --config {args.config}` for every problem",
            file=sys.stderr,
        )
        return 2
    config = dataclasses.replace(
        config,
        host=args.host or config.host,
        port=args.port if args.port is not None else config.port,
    )
    logger.info(
        "receiver.starting",
        extra={
            "host": config.host,
            "port": config.port,
            "config": str(args.config),
            "services": [str(ref) for ref in loaded.configuration.services()],
        },
    )
    for warning in loaded.warnings:
        logger.warning(
            "config.warning",
            extra={"file": warning.file, "path": warning.path, "detail": warning.message},
        )
    app.on_startup.append(_settle_the_heap)
    try:
        # libuv's loop: less CPU per request than asyncio's (bench/ingest.py)
        listener.run(app, config, uvloop.new_event_loop())
    except JournalError as e:  # at start: no journal to write to, nothing to serve
        logger.error("receiver.cannot_start", extra={"error": str(e)})
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the port is taken, or the address is not this machine's
        logger.error("receiver.cannot_listen", extra={"error": str(e)})
        print(f"receiver: cannot listen on {config.host}:{config.port}: {e}", file=sys.stderr)
        return 2
    return 0


async def _settle_the_heap(app: web.Application) -> None:
    """What start-up allocated (modules, configuration, the open-problem index) lives as
    long as the process: keep the collector from scanning it again at every collection, and
    collect less often (measured in bench/ingest.py: a webhook allocates thousands of
    short-lived objects, and generation-0 collections were 8 % of its CPU)."""
    del app
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _check(args: argparse.Namespace) -> int:
    loaded = configuration.load(args.config)
    for error in loaded.errors:
        print(error)
    warnings = list(loaded.warnings)
    if loaded.settings is not None and (
        missing := settings.credentials_missing(
            loaded.settings, str(args.config / settings.SETTINGS_FILE)
        )
    ):
        # Files can be right while this environment lacks the secret (a CI job): say that
        # serve would refuse here, without failing the files.
        warnings.append(missing)
    for warning in warnings:  # worth knowing, not wrong: the exit code stays 0
        print(f"warning: {warning}")
    if loaded.configuration is None:
        print(f"{len(loaded.errors)} problem(s) found", file=sys.stderr)
        return 1
    config = loaded.configuration
    for line in evaluation.sources(config.slos, config.root):
        print(line)
    but = (
        ", but `receiver serve` here has no credentials"
        if settings.credentials_missing(config.settings)
        else ""
    )
    print(f"{args.config}: OK ({len(config.services())} service(s)){but}")
    return 0
