"""`python -m hlsflow`: the same as the `hlsflow` command."""

from .cli.program import main

main()
