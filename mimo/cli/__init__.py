"""The `mimo` command: a thin layer over the public API (``mimo.*``). Each command parses its options, calls the
API, and prints; the behaviour, defaults and checks live in ``mimo.pipeline`` and ``mimo.models``.

One module per command group (``data``, ``embed``, ``fit``, ``runs``, ``design``); what they share is in
``_common``. Importing a group module registers its commands on ``main``.
"""
from mimo.cli._common import main
from mimo.cli import data, design, embed, fit, runs  # noqa: E402,F401  (registers the commands)

__all__ = ["main"]
