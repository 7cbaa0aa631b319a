"""``python -m infra.local``'s command line: options, logging, the env file, serving until stopped.

The stack itself is :class:`infra.local.LocalStack`; this module parses the options into a
:class:`infra.local.StackConfig`, announces the stack (demo credentials, ``ready: {json}``,
the env file) and keeps it up until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from functions.settings import Settings
from infra.endpoint import add_options as add_endpoint_options
from infra.endpoint import from_args as endpoint_from_args
from infra.local import REPO, TOMO_ROOT, LocalStack, StackConfig, log
from infra.local import __doc__ as STACK_DOC


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cat-local", description=STACK_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8000")),
        help="first region's API port (the next regions use PORT+1, ...; 0 = free ports); env PORT",
    )
    parser.add_argument("--regions", type=int, default=2, help="subscriber regions to run (default 2)")
    parser.add_argument("--root-dir", type=Path, default=REPO / "root-example", help="directory to publish")
    parser.add_argument("--root-name", default="example", help="name of the published root")
    parser.add_argument(
        "--response-limit",
        type=int,
        default=Settings().response_limit,
        help="largest buffered response body in bytes, as on Lambda (0 = unlimited); env CAT_RESPONSE_LIMIT",
    )
    parser.add_argument(
        "--stream-limit",
        type=int,
        default=200_000_000,
        help="answers past the response limit are streamed up to this many bytes, as Lambda response "
        "streaming does (0 = never stream: 413 past the response limit)",
    )
    parser.add_argument(
        "--tomo",
        action="store_true",
        help=f"also publish the 64 MiB tomography stack (generated once into {TOMO_ROOT.relative_to(REPO)}/)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every event and publish (JSON, as on Lambda)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=os.environ.get("CAT_LOCAL_STATE") or None,
        help="keep the buckets in DIR across runs: restored at start, saved at stop (env CAT_LOCAL_STATE)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="write the stack's endpoint, buckets, pool and dummy credentials to FILE once ready "
        "(for `set -a; . FILE; set +a`); removed on stop. make run writes .cat-local.env",
    )
    add_endpoint_options(parser)
    return parser


def _configure_logging(verbose: bool) -> None:
    # Our own messages at INFO; libraries (httpx, botocore) only when something is wrong
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    if not verbose:
        # The handlers log each change event and ingest at INFO, as Lambda should;
        # on a terminal that buries the ready line, so locally only warnings show
        from functions.handlers.common import logger as handler_logger

        handler_logger.setLevel(logging.WARNING)


def _root_dir(args: argparse.Namespace) -> Path:
    """The directory to publish: ``--root-dir``, or with ``--tomo`` a cached copy plus the stack.

    The tomography stack is never written into ``--root-dir`` (``root-example/`` is tracked).
    """
    if not args.tomo:
        return args.root_dir
    from infra.example_data import tomo_root

    return tomo_root(args.root_dir, TOMO_ROOT)


def _config(args: argparse.Namespace, aws_endpoint: str | None) -> StackConfig:
    return StackConfig(
        aws_endpoint=aws_endpoint,
        port=args.port,
        regions=args.regions,
        root_dir=_root_dir(args),
        root_name=args.root_name,
        response_limit=args.response_limit,
        stream_limit=args.stream_limit,
        state_dir=args.state,
    )


def _announce(stack: LocalStack, env_file: Path | None) -> dict[str, str] | None:
    """Print the demo credentials, write the env file (if asked), then the ``ready:`` line."""
    from infra.envfile import stack_env, write_env_file

    info = stack.ready_info()
    if info["demo_user"]:
        print(f"demo user: {info['demo_user']}  password: {info['demo_password']}", flush=True)
    env = None
    if env_file is not None:
        env = stack_env(info)
        write_env_file(env_file, env)
        print(f"env file: {env_file}  (set -a; . {env_file}; set +a)", flush=True)
    # Last: whoever waits for this line may rely on everything above being in place
    print("ready: " + json.dumps(info), flush=True)
    return env


def _serve(stack: LocalStack, env_file: Path | None) -> int:
    """Start *stack*, announce it, and serve until SIGTERM, Ctrl-C or moto's death; then clean up.

    Returns the exit code: 0, or 1 when moto died under the stack.
    """
    from infra.envfile import remove_env_file

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    env = None
    code = 0
    try:
        stack.start()
        env = _announce(stack, env_file)
        while not stopping.wait(0.5):
            if stack.moto_died.is_set():
                print("moto's server died: every request would fail, so the stack stops", file=sys.stderr,
                      flush=True)
                code = 1
                break
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        if env is not None:
            remove_env_file(env_file, env)
        print("stopped", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """``make run``: start the local stack and serve until interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    endpoint = endpoint_from_args(parser, args)
    _configure_logging(args.verbose)
    return _serve(LocalStack(_config(args, endpoint)), args.env_file)


