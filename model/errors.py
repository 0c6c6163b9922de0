"""User-facing errors: one line, naming the file/node/value and what is wrong.

Every entry point wraps its main() with :func:`run_cli`, which prints a `FlowError`
as a single line on stderr and exits non-zero without a traceback.
"""
from __future__ import annotations

import sys
from typing import Callable


class FlowError(Exception):
    """An error caused by the user's input (data, config, checkpoint), not by a bug."""


class DataError(FlowError):
    """Bad or missing dataset."""


class ConfigError(FlowError):
    """Unknown key or impossible value in a config."""


class CheckpointError(FlowError):
    """Corrupt, truncated or mismatched checkpoint."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run `main(argv)`; turn a FlowError into `error: <message>` and exit status 2."""
    try:
        code = main(argv)
    except FlowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
