"""Inside an image, natively (a user who runs `docker run IMAGE convert ...` or HLSFLOW_NATIVE=1, where
the host's lane choice never ran): a model saved by the other lane's Keras ends in one sentence
naming the lane to use, and nothing is written. Runs in either image: the reference image gets the
bundled Keras 3 MLP, the keras3 image the bundled Keras 2.15 model."""

import shutil
from pathlib import Path

from hlsflow.loading import keras3_lane
from state.test_safety import assert_one_sentence, folder_state, hlsflow

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_other_lanes_model_is_one_sentence_naming_the_lane(tmp_path):
    if keras3_lane():
        model, saved_by, lane = "qkeras_mlp.keras", "Keras 2.15.0", "reference"
    else:
        model, saved_by, lane = "keras3_mlp.keras", "Keras 3.15.1", "keras3"
    shutil.copy(MODELS / model, tmp_path / model)
    before = folder_state(tmp_path)
    proc = hlsflow("convert", "--model", model, "--out", "build/m", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"was saved by {saved_by}", f"run it in the {lane} lane", f"--lane {lane}")
    assert folder_state(tmp_path) == before
