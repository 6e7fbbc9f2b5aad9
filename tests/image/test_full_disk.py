"""A full disk, for real: the image alone converting into a 256 KB tmpfs. The run must end in one
sentence naming the output folder, exit 2, and leave nothing behind in that disk (the staging
folder and the lock file go with the failed run)."""

import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def test_a_full_disk_is_one_sentence_and_leaves_nothing(docker_client, built_image, tmp_path):
    shutil.copy(DATA / "tiny_cnn.keras", tmp_path / "tiny_cnn.keras")
    script = "hlsflow convert --model tiny_cnn.keras --out /full/prj; echo exit=$?; ls -A /full"
    container = docker_client.containers.create(
        built_image, ["sh", "-c", script], working_dir=str(tmp_path), network_mode="none",
        volumes={str(tmp_path): {"bind": str(tmp_path), "mode": "ro"}}, tmpfs={"/full": "size=256k"})
    try:
        container.start()
        assert container.wait(timeout=600)["StatusCode"] == 0
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert errors == ["ERROR: No space left on the disk of /full/prj (No space left on device): free space there "
                      "(`df -h /full/prj`) or choose an output folder on another disk, then run again."], err[-3000:]
    lines = out.strip().splitlines()
    exit_line = lines.index("exit=2")
    assert lines[exit_line + 1:] == [], f"left in the full disk: {lines[exit_line + 1:]}"
