"""``python -m otpy``: the same as the ``otpy`` command."""

from __future__ import annotations

from otpy.cli import main as main

if __name__ == "__main__":
    main(prog_name="otpy")
