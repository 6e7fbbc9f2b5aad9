"""`invoke` in a checkout: the same tasks as the installed `hlsflow` command, plus the ones for
working on hlsflow itself (hlsflow/devtasks.py). invoke.yaml beside this file makes invoke use
hlsflow's executor, so `invoke convert` and `hlsflow convert` are the same thing."""

from hlsflow.dev.tasks import namespace  # noqa: F401
