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
    configtree,
    listener,
    logs,
    manifests,
    sendtest,
    server,
    settings,
    slocli,
    status,
    triage,
)
from receiver.errors import ConfigError, JournalError
from receiver.rules import remediation
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
    try:
        config = settings.load(args.config)
        tree = configtree.scan(args.config)
        logs.setup(format=config.log_format, level=config.log_level)
        app = server.create_app(config, tree)
    except ConfigError as e:
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
            "services": [str(ref) for ref in tree.services()],
        },
    )
    for overridden in settings.overridden(args.config):
        logger.warning(
            "settings.overridden",
            extra={"file": overridden.file, "path": overridden.path, "detail": overridden.message},
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
    checked = triage.check_directory(args.config)
    loaded, tree, errors = checked.settings, checked.tree, checked.errors
    warnings: list[ConfigError] = []
    if tree is not None:
        default_provider = loaded.sli_provider if loaded else "prometheus"
        webhooks = frozenset(loaded.action_webhooks) if loaded else frozenset()
        warnings.extend(remediation.warnings(tree, webhooks=webhooks))
        warnings.extend(evaluation.warnings(tree, default_provider=default_provider))
    for error in errors:
        print(error)
    if loaded is not None:
        warnings.extend(settings.overridden(args.config))
        if (
            missing := settings.credentials_missing(
                loaded, str(args.config / settings.SETTINGS_FILE)
            )
        ) is not None:
            # Files can be right while this environment lacks the secret (a CI job): say
            # that serve would refuse here, without failing the files.
            warnings.append(missing)
    for warning in warnings:  # worth knowing, not wrong: the exit code stays 0
        print(f"warning: {warning}")
    if errors:
        print(f"{len(errors)} problem(s) found", file=sys.stderr)
        return 1
    assert loaded is not None
    assert tree is not None
    for line in evaluation.sources(
        tree, default_provider=loaded.sli_provider, deployment=loaded.sli_deployment
    ):
        print(line)
    but = (
        ", but `receiver serve` here has no credentials"
        if settings.credentials_missing(loaded)
        else ""
    )
    print(f"{args.config}: OK ({len(tree.services())} service(s)){but}")
    return 0
