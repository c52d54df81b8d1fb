"""The flags of ``sidequest web``, apart from the dashboard's code: that needs the web extra
(Starlette), and ``sidequest web --help`` must answer without it. Importing this loads
neither the dashboard nor the worker."""

from __future__ import annotations

import argparse

from sidequest import environ
from sidequest.config import settings_arg

#: ``sidequest web``'s defaults.
WEB_HOST = "127.0.0.1"
WEB_PORT = 7433
#: The dashboard's password, from the environment (sidequest.web.app reads it).
WEB_PASSWORD_ENV = environ.WEB_PASSWORD
WEB_EXTRA = "pip install 'sidequest[web]'"


def _web_port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is no port: give a whole number from 1 to"
                                         " 65535")
    return int(text)


def web_parser() -> argparse.ArgumentParser:
    """The flags of ``sidequest web`` (sidequest.web.server runs it)."""
    parser = argparse.ArgumentParser(
        prog="sidequest web",
        description=f"Serve the Sidequest dashboard (needs the web extra: {WEB_EXTRA}).")
    parser.add_argument("--host", default=WEB_HOST,
                        help=f"address to listen on (default {WEB_HOST})")
    parser.add_argument("--port", type=_web_port, default=WEB_PORT,
                        help=f"port (default {WEB_PORT})")
    parser.add_argument("--insecure", action="store_true",
                        help=f"serve a non-loopback address without a login ({WEB_PASSWORD_ENV}"
                             " unset): only behind a proxy that authenticates")
    _web_redis_flags(parser)
    parser.add_argument("--https", action="store_true",
                        help="browsers reach the dashboard over https (a TLS proxy in front):"
                             " always mark the session cookie Secure and send HSTS")
    parser.add_argument("--title", default="Sidequest", help="name shown in the page header")
    parser.add_argument("--forwarded-allow-ips", metavar="ADDRESSES",
                        help="comma-separated addresses of proxies whose X-Forwarded-For and"
                             " X-Forwarded-Proto headers are believed (default: none)")
    return parser


def _web_redis_flags(parser: argparse.ArgumentParser) -> None:
    redis_url = parser.add_mutually_exclusive_group()
    redis_url.add_argument("--redis-url", help="Redis URL (default: the -C file's redis_url,"
                           " $SIDEQUEST_REDIS_URL, $REDIS_URL, redis://localhost:6379/0); one"
                           " with a password is"
                           " better given in $SIDEQUEST_REDIS_URL or --redis-url-file, as"
                           " every user of this machine can read command lines")
    redis_url.add_argument("--redis-url-file", metavar="PATH",
                           help="read the Redis URL from this file (e.g. a mounted secret)")
    parser.add_argument("-C", "--config", metavar="FILE", type=settings_arg,
                        help="the worker's TOML file, for its redis_url and shard table"
                             " (default: ./sidequest.toml or ./config/sidequest.toml if there)")
