"""Model control from the command line, for people who do not speak the protocol: the repository extension's
index, load and unload against a running service (routes/v2_extensions.py), plus its statistics.

    toyseq-models index [--url http://127.0.0.1:8000]
    toyseq-models load echo [--url ...] [--api-key KEY]      # after replacing models/echo/
    toyseq-models unload echo
    toyseq-models stats [echo]
    python -m service.server.cli ...                      # the same, without the entry point

Options go before or after the command. The service's address is --url, else TOYSEQ_URL, else
http://127.0.0.1:8000; the API key is --api-key, else TOYSEQ_API_KEY. Prints the service's JSON answer; exits 0
on success, 1 when the service refused (its message on stderr), 2 on usage errors or when the service cannot be
reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:8000"


def _options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes; a sub-command's copy has no defaults (argparse.SUPPRESS), so that an
    option given before the command is not overwritten by the command's own default."""

    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get("TOYSEQ_URL") or DEFAULT_URL),
        help=f"the service (default: $TOYSEQ_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key", default=default(os.environ.get("TOYSEQ_API_KEY", "")), help="default: $TOYSEQ_API_KEY"
    )
    parser.add_argument("--timeout", type=float, default=default(60.0), help="seconds to wait for the answer")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="toyseq-models", description=__doc__.split("\n")[0])
    _options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _options(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("index", help="every task with its version and state", parents=[common])
    for name, text in (
        ("load", "re-read the task's folder and serve it in every worker (needs TOYSEQ_MODEL_CONTROL=explicit)"),
        ("unload", "stop serving the task (needs TOYSEQ_MODEL_CONTROL=explicit)"),
    ):
        sub.add_parser(name, help=text, parents=[common]).add_argument("task")
    stats = sub.add_parser("stats", help="inference statistics, summed over workers", parents=[common])
    stats.add_argument("task", nargs="?")
    return parser.parse_args(argv)


def request(args: argparse.Namespace) -> tuple[str, str]:
    """(method, path) of the call the command makes."""
    if args.command == "index":
        return "POST", "/v2/repository/index"
    if args.command == "stats":
        return "GET", f"/v2/models/{quote(args.task, safe='')}/stats" if args.task else "/v2/models/stats"
    return "POST", f"/v2/repository/models/{quote(args.task, safe='')}/{args.command}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    method, path = request(args)
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    call = urllib.request.Request(
        args.url.rstrip("/") + path, data=b"{}" if method == "POST" else None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(call, timeout=args.timeout) as answer:
            body = answer.read()
    except urllib.error.HTTPError as err:
        print(f"{args.command} failed: HTTP {err.code}: {_message(err.read())}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as err:
        print(f"cannot reach {args.url}: {getattr(err, 'reason', err)}", file=sys.stderr)
        return 2
    print(json.dumps(json.loads(body), indent=2))
    return 0


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body.decode(errors="replace")))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:500]


if __name__ == "__main__":
    sys.exit(main())
