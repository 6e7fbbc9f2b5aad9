"""What only the keras3 lane runs (issue 42), from an empty user folder through the installed host
`hlsflow`, the lane chosen from the model's file:
- distributed arithmetic: hls4ml 1.3.0's `distributed_arithmetic` strategy needs da4ml, which needs
  numpy 2. init with the strategy, flow on the fast engine, bit for bit with hls4ml's C++ on
  --cross-check, and a plan of 0 DSPs (adder graphs in LUTs instead);
- QKeras v3 (qkeras-v3), converted through hlsflow's handler in hls4ml's registry (hlsflow/qkeras3.py):
  init --samples writes its quantizers' types, flow runs on the fast engine, bit for bit on --cross-check."""

import shutil

from test_handover_identity import hlsflow
from test_keras3_lane import MODELS, NO_REFERENCE, assert_flow_bit_exact, keras3_image  # noqa: F401 (the fixture)


def test_distributed_arithmetic_model_is_bit_exact_and_plans_no_dsp(keras3_image, tmp_path):  # noqa: F811
    """The bundled HGQ2 MLP with Strategy distributed_arithmetic for every layer: its HGQ quantizers
    are fused into the adder graphs by hls4ml, its weights are in no file of the project."""
    for suffix in (".keras", "_samples.npz"):
        shutil.copy(MODELS / f"hgq2_mlp{suffix}", tmp_path / f"hgq2_mlp{suffix}")
    env = {"HLSFLOW_IMAGE": NO_REFERENCE, "HLSFLOW_IMAGE_KERAS3": keras3_image}
    proc, _ = hlsflow("init", "--model", "hgq2_mlp.keras", "--samples", "hgq2_mlp_samples.npz",
                      "--strategy", "distributed_arithmetic", cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Strategy: distributed_arithmetic" in (tmp_path / "hls4ml_config.yml").read_text()

    assert_flow_bit_exact(tmp_path, env)

    proc, _ = hlsflow("plan", cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Estimated multipliers: ~0 of" in proc.stdout, proc.stdout[-3000:]
    assert "Distributed arithmetic (fc1, fc2, fc3): 0 DSPs and no weight BRAM, ~" in proc.stdout, proc.stdout[-3000:]


def test_qkeras_v3_cnn_runs_bit_exact(keras3_image, tmp_path):  # noqa: F811
    for suffix in (".keras", "_samples.npz"):
        shutil.copy(MODELS / f"qkeras3_cnn{suffix}", tmp_path / f"qkeras3_cnn{suffix}")
    env = {"HLSFLOW_IMAGE": NO_REFERENCE, "HLSFLOW_IMAGE_KERAS3": keras3_image}
    proc, _ = hlsflow("init", "--model", "qkeras3_cnn.keras", "--samples", "qkeras3_cnn_samples.npz", cwd=tmp_path,
                      **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "running it in the keras3 lane" in proc.stdout, proc.stdout[-3000:]
    written = (tmp_path / "hls4ml_config.yml").read_text()
    assert "conv1: weight ap_fixed<6,1>, bias ap_fixed<6,1>" in written, written  # its quantized_bits(6, 0)
    assert "relu1: result ap_ufixed<6,2,AP_RND_CONV,AP_SAT>" in written, written  # its quantized_relu(6, 2)

    assert_flow_bit_exact(tmp_path, env)
