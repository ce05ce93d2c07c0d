"""``phichat serve``: share this machine's model with other phichat terminals over HTTP."""

from __future__ import annotations

import argparse
import sys

from phichat.cli.common import add_model_flags, settings_from_args
from phichat.textsafe import one_line


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve the model over an OpenAI-compatible HTTP API",
        description="Serve the model at /v1/chat/completions and /v1/models, for phichat's "
        "openai backend or any OpenAI client. Listens on 127.0.0.1 unless --host says "
        "otherwise; any other address needs an API key (api_key in the config file or "
        "PHICHAT_API_KEY), which clients send as a Bearer token.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=port_number, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--served-model-name",
        metavar="NAME",
        help="the model id clients ask for (default: phi-3-mini, or --api-model)",
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=8,
        metavar="N",
        help="requests that may queue for the model before more get HTTP 429 (default: 8)",
    )
    add_model_flags(parser, on_subcommand=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from phichat.chat.factory import turn_options
    from phichat.chat.model_handle import ModelHandle
    from phichat.models import create_model
    from phichat.server.app import ServeOptions, check_bind, make_server

    # Refuse a public address without a key before spending a minute loading the model.
    check_bind(args.host, settings.api_key)
    model = create_model(settings)
    log(f"loading {model.name}")
    ModelHandle(model).wait(progress=lambda description, _fraction: log(description))
    options = ServeOptions(
        model_id=args.served_model_name or settings.api_model or "phi-3-mini",
        defaults=turn_options(settings).generation,
        api_key=settings.api_key,
        max_waiting=max(args.max_waiting, 0),
    )
    server = make_server(model, options, args.host, args.port, log=log)
    facts = model.describe()
    log(
        f"serving {options.model_id} ({facts.get('device', '')}, {facts.get('dtype', '')}) "
        f"at {server.url}" + (" with an API key" if options.api_key else "")
    )
    log("press Ctrl+C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
    return 0


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port), checked before the model loads."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range: use 0 to 65535")
    return port


def log(text: str) -> None:
    print(f"· {one_line(text, 400)}", file=sys.stderr, flush=True)
