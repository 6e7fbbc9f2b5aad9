"""`python -m hlsflow`: the same as the `hlsflow` command."""

from .cli import main

main()
