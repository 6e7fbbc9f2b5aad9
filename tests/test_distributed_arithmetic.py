"""Strategy distributed_arithmetic needs da4ml, which needs numpy 2: the keras3 lane has it (its flow
is tests/image/test_keras3_da.py), the reference lane cannot. There, a config asking for it ends in
one sentence naming the keras3 lane before hls4ml runs, and nothing is written."""

import importlib.util
import shutil
from pathlib import Path

from hlsflow.loading import keras3_lane
from state.test_safety import assert_one_sentence, folder_state, hlsflow

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_distributed_arithmetic_outside_the_keras3_lane_is_one_sentence(tmp_path):
    if keras3_lane():  # the lane that runs it: da4ml is there
        assert importlib.util.find_spec("da4ml") is not None
        return
    shutil.copy(MODELS / "qkeras_mlp.keras", tmp_path / "m.keras")
    proc = hlsflow("init", "--model", "m.keras", "--strategy", "distributed_arithmetic", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    before = folder_state(tmp_path)
    proc = hlsflow("convert", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, "Strategy distributed_arithmetic needs da4ml", "--lane keras3")
    assert folder_state(tmp_path) == before
