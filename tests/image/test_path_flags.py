"""Every flag of every task that runs in the image is declared (cli/kinds.py): a path of a kind
(PATH_FLAGS) that its task reads or writes, or a value (VALUE_FLAGS). The launcher mounts each path
flag from that declaration: here each one is given a real path and launcher.mount_plan is asked
what it mounts. A new flag with no declaration fails the first test, before it can reach a
container unmounted."""

from pathlib import Path

import pytest

from hlsflow.cli import kinds, launcher
from hlsflow.cli.tasks import namespace
from test_launcher_plan import parse, project  # noqa: F401 -- the same parser and user folder

IMAGE_TASKS = [ctx.name for ctx in namespace.to_contexts() if kinds.spec_of(namespace[ctx.name]).where == "image"]


def flags_of(task: str) -> list:
    return [arg.name for ctx in namespace.to_contexts() if ctx.name == task for arg in ctx.args.values()]


def test_every_flag_of_an_image_task_is_declared_a_path_or_a_value():
    assert "csim" in IMAGE_TASKS and "init" in IMAGE_TASKS
    for task in IMAGE_TASKS:
        spec = kinds.spec_of(namespace[task])
        config_paths = kinds.CONFIG_PATHS if spec.uses_config else ()
        for flag in flags_of(task):
            assert (flag in kinds.PATH_FLAGS) != (flag in kinds.VALUE_FLAGS), \
                f"`{task} --{flag}`: declare it in cli/kinds.py, as a path (PATH_FLAGS) or a value (VALUE_FLAGS)"
            if flag in kinds.PATH_FLAGS:
                assert flag in spec.inputs + spec.outputs + config_paths + spec.remote, \
                    f"`{task} --{flag}` names a file: declare it among the task's inputs, outputs or remote paths"
        for flag in spec.inputs + spec.outputs + spec.remote:
            assert flag in kinds.PATH_FLAGS and flag in flags_of(task), (task, flag)


def _example(kind: str, root: Path) -> tuple:
    """(a real path of that kind, the paths mount_plan must mount read-only for it)."""
    if kind == kinds.MODEL:
        return root / "models" / "tiny_cnn.keras", [root / "models" / "tiny_cnn.keras"]
    if kind == kinds.SAMPLES:
        return root / "models" / "tiny_samples.npz", [root / "models" / "tiny_samples.npz"]
    if kind == kinds.INSTALL:  # a Xilinx tree: the tree is mounted, as the install reaches beside itself
        (root / "xilinx" / "Vivado" / "2018.2" / "bin").mkdir(parents=True, exist_ok=True)
        return root / "xilinx" / "Vivado" / "2018.2", [root / "xilinx"]
    path = root / "given" / "input.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("system: pbs\n" if kind == kinds.JOBQUEUE else "ReuseFactor: [4]\n")
    return path, [path]


@pytest.mark.parametrize("task", IMAGE_TASKS)
def test_each_declared_path_flag_is_mounted_as_its_kind_says(task, project):
    spec = kinds.spec_of(namespace[task])
    config = ("--config", "models/hls4ml_config.yml") if spec.uses_config else ()
    checked = 0
    for flag in spec.inputs:
        if spec.uses_config and flag in kinds.CONFIG_PATHS:
            continue  # resolved with the config: test_launcher_plan.py
        path, mounted = _example(kinds.PATH_FLAGS[flag], project)
        argv, mounts = launcher.mount_plan(namespace, parse(task, *config, f"--{flag}", str(path)))
        for folder in mounted:
            assert mounts.modes.get(str(folder)) == "ro", (task, flag, mounts.modes)
        assert argv[argv.index(f"--{flag}") + 1] == str(path)
        checked += 1
    for flag in spec.outputs:
        path = project / "written" / flag / "out.file"
        argv, mounts = launcher.mount_plan(namespace, parse(task, *config, f"--{flag}", str(path.relative_to(project))))
        assert mounts.modes.get(str(path.parent)) == "rw", (task, flag, mounts.modes)
        assert argv[argv.index(f"--{flag}") + 1] == str(path)  # made absolute for the container
        checked += 1
    for flag in spec.remote:  # as the sweep's workers see it: handed on as given, never mounted
        argv, mounts = launcher.mount_plan(namespace, parse(task, *config, f"--{flag}", "/tools/Xilinx/Vivado/2018.2"))
        assert argv[argv.index(f"--{flag}") + 1] == "/tools/Xilinx/Vivado/2018.2"
        assert not any(path.startswith("/tools") for path in mounts.modes), mounts.modes
        checked += 1
    assert checked == len([f for f in spec.inputs if not (spec.uses_config and f in kinds.CONFIG_PATHS)]) + \
        len(spec.outputs) + len(spec.remote)


def test_a_file_written_beside_the_config_gets_the_configs_folder(project):
    # tune-precision and plan name their file where they write it; the launcher mounts its folder.
    for task in ("tune-precision", "plan"):
        assert kinds.spec_of(namespace[task]).writes_beside_config
        _, mounts = launcher.mount_plan(namespace, parse(task, "--config", "models/hls4ml_config.yml"))
        assert mounts.modes[str(project / "models")] == "rw", mounts.modes
        _, mounts = launcher.mount_plan(namespace, parse(task, "--config", "models/hls4ml_config.yml",
                                                         "--write", "elsewhere/tuned.yml"))
        assert mounts.modes[str(project / "models" / "hls4ml_config.yml")] == "ro", mounts.modes
        assert str(project / "models") not in mounts.modes
