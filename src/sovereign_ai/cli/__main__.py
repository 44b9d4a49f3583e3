"""``python -m sovereign_ai.cli``: the same as the ``sovereign`` command."""

from sovereign_ai.cli.main import app

app(prog_name="sovereign")
