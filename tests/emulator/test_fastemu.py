"""The fast engine against hls4ml's own C++ emulation, bit for bit.

Every comparison here is with real C++ compiled by g++ from hls4ml's and Xilinx's headers: the
per-layer trace of hls4ml's emulation library, or a small program of ap_fixed casts."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT, flow_env, run_hlsflow, run_invoke
from layerwise import config as _config, layerwise as _layerwise

ROUNDING = ["TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_INF", "RND_MIN_INF", "RND_CONV"]
OVERFLOW = ["WRAP", "SAT", "SAT_ZERO", "SAT_SYM"]


def _ap_types() -> Path:
    import hls4ml

    return Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"


@st.composite
def fixed_types(draw, max_width=24):
    from hlsflow.fixedtype import FixedType

    width = draw(st.integers(2, max_width))
    return FixedType(width, draw(st.integers(-2, width + 2)), draw(st.booleans()), draw(st.sampled_from(ROUNDING)),
              draw(st.sampled_from(OVERFLOW)))


def _cpp_type(t) -> str:
    return f"ap_{'' if t.signed else 'u'}fixed<{t.width},{t.integer},AP_{t.rounding},AP_{t.overflow}>"


CAST_FLAGS = ("-O1", "-std=c++14")


@pytest.fixture(scope="module")
def ap_fixed_pch(tmp_path_factory) -> Path:
    """A folder with ap_fixed.h precompiled (g++ finds the .gch before the header): parsing the
    header is half of each cast program's compile (0.9 s against 0.4 s)."""
    folder = tmp_path_factory.mktemp("pch")
    subprocess.run(["g++", *CAST_FLAGS, f"-I{_ap_types()}", "-x", "c++-header", _ap_types() / "ap_fixed.h", "-o",
                    folder / "ap_fixed.h.gch"], check=True)
    return folder


def test_casts_match_ap_fixed(tmp_path_factory, ap_fixed_pch):
    """Random source and target types (every rounding and overflow mode, wrap-around and saturation
    included): fixedpoint.cast gives the raw bits Xilinx's ap_fixed assignment gives, and
    fixedpoint.from_float the bits of ap_fixed's constructor from a float. test_ap_fixed_table.py
    compiles a fixed table of 84 such pairs at once; these few are drawn anew each run, and the ones
    compared are counted (a pair Xilinx's header refuses is drawn again, not matched)."""
    from hlsflow.emulator import fixedpoint as fp

    compared = []

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(src=fixed_types(), dst=fixed_types(), seed=st.integers(0, 2 ** 32 - 1))
    def check(src, dst, seed):
        rng = np.random.default_rng(seed)
        raw = rng.integers(src.min_raw, src.max_raw + 1, 64, dtype=np.int64)
        raw[:4] = [src.min_raw, src.max_raw, 0, min(src.max_raw, 1)]
        floats = (rng.normal(0, 2.0 ** max(dst.integer, 0) * 1.5, 32)).astype(np.float32)
        work = tmp_path_factory.mktemp("cast")
        (work / "cast.cpp").write_text(f"""
    #include "ap_fixed.h"
    #include <cstdio>
    #include <cstdlib>
    typedef {_cpp_type(src)} src_t;
    typedef {_cpp_type(dst)} dst_t;
    int main(int argc, char **argv) {{
        long long v; float f;
        while (std::scanf("%lld", &v) == 1) {{
            if (v == 123456789012LL) break;
            src_t s; s.V = v; dst_t d = s; std::printf("%lld\\n", (long long)d.V.to_int64());
        }}
        while (std::scanf("%f", &f) == 1) {{ dst_t d = f; std::printf("%lld\\n", (long long)d.V.to_int64()); }}
    }}
    """)
        subprocess.run(["g++", *CAST_FLAGS, f"-I{ap_fixed_pch}", f"-I{_ap_types()}", "-Winvalid-pch", "-Werror=invalid-pch",
                        "cast.cpp", "-o", "cast"], cwd=work, check=True)
        stdin = "\n".join(str(int(v)) for v in raw) + "\n123456789012\n" + "\n".join(repr(float(f)) for f in floats)
        run = subprocess.run(["./cast"], cwd=work, input=stdin, capture_output=True, text=True)
        # Xilinx's header asserts when rounding would read a bit beyond the source's MSB (all its bits dropped):
        # hls4ml's emulation aborts on such a cast too, so there is nothing to match. Any other failure fails.
        assume("Attempting to read bit beyond MSB" not in run.stderr)
        assert run.returncode == 0, run.stderr[-2000:]
        out = run.stdout.split()
        cpp = np.array([int(v) for v in out], dtype=np.int64)
        assert np.array_equal(fp.convert(raw, src, dst), cpp[:len(raw)]), (src, dst)
        codes = fp.elementwise_codes(src.frac - dst.frac, dst)
        if src != dst:  # (the same type is a copy in C++: no overflow mode applies, as convert knows)
            assert np.array_equal(fp.cast(raw, src.frac, dst), cpp[:len(raw)]), (src, dst)
        if codes is not None and src != dst:  # the compiled elementwise cast (BatchNormalization, Merge) gives the same bits
            from hlsflow.emulator import kernels

            out = np.empty(len(raw), np.int64)
            kernels.merge_cast(raw, np.zeros_like(raw), 0, 0, 0, *codes, out)
            assert np.array_equal(out, cpp[:len(raw)]), (src, dst)
        assert np.array_equal(fp.from_float(floats, dst), cpp[len(raw):]), (dst, floats)
        compared.append((src, dst))

    check()
    assert len(compared) >= 6, f"only {len(compared)} pairs compared"


@pytest.mark.parametrize("a_t, acc", [((32, 11), (48, 4)), ((31, 10), (32, -10))], ids=["int64 sums", "int32 sums"])
def test_mac_of_exact_products_too_wide_for_float64(a_t, acc):
    """Products that lose no bit (shift < 0) but whose sums outgrow float64: the integer kernels
    shift the sum into the accumulator's fraction, then add the bias, and wrap; Python's ints agree."""
    from hlsflow.emulator import fixedpoint as fp
    from hlsflow.fixedtype import FixedType

    a_t, acc, w_frac = FixedType(*a_t), FixedType(*acc), 20
    assert a_t.frac + w_frac < acc.frac
    rng = np.random.default_rng(5)
    a = rng.integers(a_t.min_raw, a_t.max_raw + 1, (6, 24), dtype=np.int64)
    w = rng.integers(-2 ** 29, 2 ** 29, (24, 3), dtype=np.int64)
    bias = rng.integers(-2 ** 30, 2 ** 30, 3, dtype=np.int64)
    shift = acc.frac - a_t.frac - w_frac

    def wrap(v):
        v %= 1 << acc.width
        return v - (1 << acc.width) if v >= 1 << (acc.width - 1) else v

    expected = [[wrap((sum(int(a[p, i]) * int(w[i, j]) for i in range(24)) << shift) + int(bias[j]))
                 for j in range(3)] for p in range(6)]
    assert np.array_equal(fp.mac(a, a_t, w, w_frac, bias, acc), np.array(expected, dtype=np.int64))


def test_reference_model_layer_by_layer():
    """The reference Mini-ResNet (io_stream, Resource, ReuseFactor 32, the GAP accumulator widened):
    every traced layer, Conv2D, BatchNormalization, ReLU, Add, pointwise shortcuts, the
    GlobalAveragePooling accumulator, Dense and the softmax tables."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "flow.yml"
        cfg_path.write_text((REPO_ROOT / "project" / "hls4ml_config.yml").read_text()
                            .replace("../models/", str(REPO_ROOT / "models") + "/"))
        compared, engine = _layerwise(cfg_path, 12)
    assert {"stem_conv", "s1a_bn", "s1_add", "s2_shortcut", "gap", "logits", "softmax"} <= set(compared)


def test_digits_cnn_layer_by_layer(tmp_path):
    """The bundled digits CNN (io_parallel, Latency): Conv2D with padding inside, MaxPooling, Flatten."""
    cfg = _config(tmp_path, REPO_ROOT / "models" / "digits_cnn.keras", REPO_ROOT / "models" / "digits_samples.npz")
    compared, _ = _layerwise(cfg, 60)
    assert {"conv1", "pool1", "conv2", "fc", "softmax"} <= set(compared)


def _planted_overflow(root: Path) -> tuple:
    """A CNN whose GlobalAveragePooling sum wraps around in ap_fixed<16,6> (and whose ReLU saturates
    where its type says so): the emulation must wrap exactly where the hardware wraps."""
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(2)
    inp = tf.keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    a = layers.Activation("relu", name="relu")(a)
    a = layers.AveragePooling2D(2, name="avg")(a)
    a = layers.GlobalAveragePooling2D(name="gap")(a)
    out = layers.Dense(5, activation="softmax", name="fc")(a)
    model = tf.keras.Model(inp, out)
    kernel, _ = model.get_layer("conv").get_weights()
    model.get_layer("conv").set_weights([np.abs(kernel) * 3, np.linspace(0.2, 1.0, 6)])
    model.save(root / "m.keras")
    rng = np.random.default_rng(0)
    np.savez(root / "s.npz", X=(rng.uniform(0, 4, (40, 8, 8, 3))).astype(np.float32))
    return root / "m.keras", root / "s.npz"


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_planted_overflow_wraps_like_the_hardware(tmp_path, io_type):
    model, samples = _planted_overflow(tmp_path)
    cfg = _config(tmp_path, model, samples, io_type=io_type, strategy="Resource", reuse=9,
                  layer_types={"relu": {"result": "ap_ufixed<10,4,AP_RND,AP_SAT>"}})
    compared, _ = _layerwise(cfg, 40)
    assert {"conv", "relu", "avg", "gap", "fc"} <= set(compared)
    import tensorflow as tf

    # The planted fault is real: Keras's conv values leave ap_fixed<16,6>'s +-32 on these samples.
    keras_model = tf.keras.models.load_model(model)
    conv = tf.keras.Model(keras_model.inputs, keras_model.get_layer("conv").output)
    assert np.abs(conv.predict(np.load(samples)["X"], verbose=0)).max() > 32


@st.composite
def small_models(draw):
    """A random small network and random types, including saturating and rounding result types."""
    layers_ = draw(st.lists(st.sampled_from(["dense", "relu", "bn", "dense_sat"]), min_size=1, max_size=4))
    widths = draw(st.lists(st.integers(2, 12), min_size=len(layers_) + 1, max_size=len(layers_) + 1))
    precision = draw(st.sampled_from(["ap_fixed<16,6>", "ap_fixed<12,4>", "ap_fixed<18,8>", "ap_fixed<10,6>"]))
    rounding = draw(st.sampled_from(["AP_TRN", "AP_RND", "AP_RND_CONV", "AP_TRN_ZERO"]))
    overflow = draw(st.sampled_from(["AP_WRAP", "AP_SAT", "AP_SAT_SYM"]))
    scale = draw(st.sampled_from([0.5, 4.0, 40.0]))  # from quiet inputs to ones that overflow
    strategy = draw(st.sampled_from(["Latency", "Resource"]))
    seed = draw(st.integers(0, 1000))
    return layers_, widths, precision, rounding, overflow, scale, strategy, seed


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(spec=small_models())
def test_random_small_models_layer_by_layer(tmp_path_factory, spec):
    import tensorflow as tf
    from tensorflow.keras import layers

    kinds, widths, precision, rounding, overflow, scale, strategy, seed = spec
    root = tmp_path_factory.mktemp("random")
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((widths[0],), name="x")
    a, types = inp, {}
    for i, kind in enumerate(kinds):
        if kind in ("dense", "dense_sat"):
            a = layers.Dense(widths[i + 1], name=f"d{i}")(a)
            if kind == "dense_sat":
                w = precision.split("<")[1].rstrip(">").split(",")
                types[f"d{i}"] = {"result": f"ap_fixed<{w[0]},{w[1]},{rounding},{overflow}>"}
        elif kind == "relu":
            a = layers.Activation("relu", name=f"r{i}")(a)
        else:
            a = layers.BatchNormalization(name=f"b{i}")(a)
    model = tf.keras.Model(inp, a)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            rng = np.random.default_rng(seed)
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.normal(0, 1, n), rng.uniform(0.5, 2, n)])
    model.save(root / "m.keras")
    rng = np.random.default_rng(seed)
    np.savez(root / "s.npz", X=(rng.normal(0, scale, (24, widths[0]))).astype(np.float32))
    cfg = _config(root, root / "m.keras", root / "s.npz", precision=precision, strategy=strategy, layer_types=types)
    compared, _ = _layerwise(cfg, 24)
    # Compared, not skipped: a Dense layer is never folded away (a BatchNormalization may be, into it).
    assert len(compared) >= max(1, sum(kind.startswith("dense") for kind in kinds)), (kinds, compared)


def _csim(*args, cwd=None):
    return run_hlsflow("csim", *args, cwd=cwd or os.getcwd())


def test_csim_uses_the_fast_engine_and_cross_checks(tmp_path):
    """csim on the digits CNN: the fast engine by default, a cross-check against the C++ path,
    the C++ path on request, and the same results from both."""
    cfg = _config(tmp_path, REPO_ROOT / "models" / "digits_cnn.keras", REPO_ROOT / "models" / "digits_samples.npz")
    fast = _csim("--config", cfg, "--cross-check", 20, "--max-samples", 150)
    assert fast.returncode == 0, fast.stdout[-3000:] + fast.stderr[-2000:]
    assert "agree bit for bit on all 20 samples" in fast.stdout
    result = json.loads((tmp_path / "prj" / "csim.json").read_text())
    assert result["engine"] == "fast" and result["cross_check"] == {"samples": 20, "identical": True}
    cpp = _csim("--config", cfg, "--engine", "cpp", "--max-samples", 150, "--out", tmp_path / "prj-cpp")
    assert cpp.returncode == 0, cpp.stdout[-3000:] + cpp.stderr[-2000:]
    other = json.loads((tmp_path / "prj-cpp" / "csim.json").read_text())
    assert other["engine"] == "cpp"
    for key in ("top1_agreement", "hls_accuracy", "max_abs_diff", "mean_abs_diff"):
        assert other[key] == result[key], key


def test_unsupported_layer_falls_back_to_cpp_in_one_line(tmp_path):
    import tensorflow as tf
    from tensorflow.keras import layers

    inp = tf.keras.Input((4, 3))  # the fast engine has no recurrent layers
    out = layers.Dense(3, name="fc")(layers.LSTM(4, name="lstm")(inp))
    tf.keras.Model(inp, out).save(tmp_path / "m.keras")
    np.savez(tmp_path / "s.npz", X=np.random.default_rng(0).normal(0, 1, (16, 4, 3)).astype(np.float32))
    cfg = _config(tmp_path, tmp_path / "m.keras", tmp_path / "s.npz")
    auto = _csim("--config", cfg)
    assert auto.returncode == 0, auto.stdout[-3000:] + auto.stderr[-2000:]
    line = next(line for line in auto.stdout.splitlines() if line.startswith("Fast engine:"))
    assert "lstm" in line and "C++ emulation for the whole model" in line
    assert json.loads((tmp_path / "prj" / "csim.json").read_text())["engine"] == "cpp"
    forced = _csim("--config", cfg, "--engine", "fast", "--out", tmp_path / "prj2")
    assert forced.returncode != 0 and "Traceback" not in forced.stderr
    assert "cannot emulate this design" in forced.stderr and "--engine cpp" in forced.stderr
    for bad in (["--engine", "gpu"], ["--cross-check", "0"], ["--cross-check", "abc"]):
        proc = _csim("--config", cfg, *bad, "--out", tmp_path / "never")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, bad
        assert proc.stderr.strip().splitlines()[-1].endswith("."), proc.stderr
        assert not (tmp_path / "never").exists(), f"{bad} converted before the flag was checked"


def test_csim_fails_on_cpp_that_g_plus_plus_rejects(tmp_path):
    """The fast engine reads types and weights, not the C++: a design whose C++ does not compile
    must still fail csim. hls4ml 1.3.0 writes such C++ for a standalone Keras Softmax layer; the
    same model with Activation('softmax') compiles and passes."""
    import tensorflow as tf
    from tensorflow.keras import layers

    np.savez(tmp_path / "s.npz", X=np.random.default_rng(0).normal(0, 1, (16, 6)).astype(np.float32))
    for name, last in (("layer", layers.Softmax(name="sm")), ("activation", layers.Activation("softmax", name="sm"))):
        inp = tf.keras.Input((6,))
        tf.keras.Model(inp, last(layers.Dense(4, name="d")(inp))).save(tmp_path / f"{name}.keras")
    cfg = _config(tmp_path, tmp_path / "layer.keras", tmp_path / "s.npz")
    env = flow_env(HLSFLOW_CPP_ACCEPTED=tmp_path / "accepted")  # what g++ accepted before: this test's own

    def csim(*args):
        return run_hlsflow("csim", *args, cwd=os.getcwd(), env=env)

    for out in ("prj", "prj-again"):  # a rejected tree is never remembered as accepted
        bad = csim("--config", cfg, "--out", tmp_path / out)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout[-3000:] + bad.stderr[-2000:]
        assert "g++ rejects the C++ hls4ml wrote" in bad.stderr and "Activation('softmax')" in bad.stderr
        assert "softmax_config" in (tmp_path / out / "cpp_check.log").read_text()
        assert not (tmp_path / out / "csim.json").exists()
    good_cfg = _config(tmp_path, tmp_path / "activation.keras", tmp_path / "s.npz")
    good = csim("--config", good_cfg, "--out", tmp_path / "ok")
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-2000:]
    assert "Checking that g++ accepts" in good.stdout
    assert json.loads((tmp_path / "ok" / "csim.json").read_text())["engine"] == "fast"
    again = csim("--config", good_cfg, "--out", tmp_path / "ok", "--max-samples", 8)
    assert again.returncode == 0 and "Checking that g++ accepts" not in again.stdout  # once per project tree
    # The same design in another folder: the same tree, which g++ accepted; its output is kept as it was.
    elsewhere = csim("--config", good_cfg, "--out", tmp_path / "ok2")
    assert elsewhere.returncode == 0, elsewhere.stdout[-3000:] + elsewhere.stderr[-2000:]
    assert "Checking that g++ accepts" not in elsewhere.stdout and "g++ accepted this same C++ before" in elsewhere.stdout
    assert (tmp_path / "ok2" / "cpp_check.log").read_bytes() == (tmp_path / "ok" / "cpp_check.log").read_bytes()
    for entry in (tmp_path / "accepted").iterdir():
        entry.write_bytes(b"damaged")  # an entry that cannot be read counts as none: g++ checks again
    damaged = csim("--config", good_cfg, "--out", tmp_path / "ok3")
    assert damaged.returncode == 0 and "Checking that g++ accepts" in damaged.stdout, damaged.stdout[-3000:]
    # With no g++ on PATH the check cannot run: one sentence, exit 2, no results.
    bare = tmp_path / "bin"  # every command on PATH but g++
    bare.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else ():
            if tool.name != "g++" and not (bare / tool.name).exists():
                (bare / tool.name).symlink_to(tool)
    proc = run_hlsflow("csim", "--config", tmp_path / "flow.yml", "--out", tmp_path / "no-gpp", cwd=os.getcwd(),
                       env=flow_env(PATH=str(bare)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "g++, which is not on PATH" in proc.stderr and not (tmp_path / "no-gpp" / "csim.json").exists()


def test_csim_reference_runs_fast_by_default():
    """The README's csim on the bundled model: the fast engine, no g++ build needed."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = run_invoke("csim", "--out", Path(tmp) / "out", "--max-samples", 100)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        result = json.loads((Path(tmp) / "out" / "csim.json").read_text())
        assert result["engine"] == "fast" and result["emulation_build"]["library"] is None
        assert result["top1_agreement"] == 1.0
