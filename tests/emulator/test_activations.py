"""The fast engine's activations against hls4ml's own C++, bit for bit.

Two kinds of comparison, both with real C++ compiled by g++ from hls4ml's and Xilinx's headers:
every nnet:: activation function run on every value of a few input types (one small program,
io_parallel and io_stream versions side by side), and whole models converted from Keras, layer by
layer against hls4ml's per-layer trace."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerwise import layerwise as _layerwise

PACK = 8  # values per io_stream pack in the C++ program


def _templates() -> Path:
    import hls4ml

    return Path(hls4ml.__file__).parent / "templates" / "vivado"


def _cases():
    """(kind, input type, result type, options) covering every function nnet_activation.h has for
    Keras 2's activations and QKeras's, with inputs beyond the tables' ranges, rounding and
    saturating result types, table types and sizes other than the defaults, a negative-fraction input."""
    from hlsflow.fixedtype import FixedType as T

    wide = T(14, 5)  # -16..16: past every table's range
    coarse = T(8, 10)  # steps of 4: a negative fraction
    narrow = T(10, 1, True, "RND", "SAT")  # selu's lambda overflows the stream version's cast
    table = T(18, 8)
    outs = [T(16, 6), T(12, 4, True, "RND_CONV", "SAT"), T(8, 1, False, "RND", "SAT_SYM")]
    cases = []
    for kind in ("sigmoid", "tanh", "softplus", "softsign", "selu"):
        for in_t, out_t, t_t, size in ((wide, outs[0], table, 1024), (wide, outs[1], T(12, 3, True, "RND"), 1000),
                                       (coarse, outs[2], table, 256), (narrow, outs[1], table, 4096),
                                       (wide, T(40, 4), T(40, 4, True, "RND"), 2048)):  # every bit of the floats
            cases.append((kind, in_t, out_t, {"table_t": t_t, "table_size": size}))
    for alpha, param_t in ((1.0, T(1, 1, False)), (0.6000000238418579, T(8, 0, False)), (1.7, T(10, 3, True, "RND"))):
        for in_t in (wide, coarse):
            cases.append(("elu", in_t, outs[1], {"table_t": table, "table_size": 1024, "param": alpha,
                                                 "param_t": param_t}))
    for kind, value, param_t in (("leaky_relu", 0.10000000149011612, T(8, -3, False)),
                                 ("leaky_relu", 0.3, T(16, 6, True, "RND", "SAT")),
                                 ("thresholded_relu", 0.699999988079071, T(16, 6)),
                                 ("thresholded_relu", -1.3, T(6, 2))):
        for in_t in (wide, coarse, narrow):
            cases.append((kind, in_t, outs[1], {"param": value, "param_t": param_t}))
    for in_t in (wide, narrow):
        cases.append(("prelu", in_t, outs[0], {"param_t": T(8, 2)}))
        for kind in ("relu6", "relu1", "ternary_tanh", "binary_tanh"):
            cases.append((kind, in_t, outs[1], {}))
    cases.append(("binary_tanh", wide, T(1, 1, False), {"uint1": True}))
    cases.append(("ternary_tanh", wide, T(2, 2), {}))
    for kind in ("hard_sigmoid", "hard_tanh"):
        for in_t in (wide, coarse, narrow, T(8, 0)):
            cases.append((kind, in_t, outs[1], {"slope": (0.2, T(16, 0, False)), "shift": (0.5, T(2, 0, False))}))
        cases.append((kind, wide, outs[0], {"slope": (0.1666667, T(12, 0, False, "RND")),
                                            "shift": (0.5, T(3, 1, False))}))
    return [(k, i, o, opts, stream) for k, i, o, opts in cases for stream in (False, True)
            if not (stream and k in ("relu6", "relu1"))]  # hls4ml has no stream relu_max


def _alphas(n: int, t) -> np.ndarray:
    """PReLU's alphas in the C++ program: raw values spread over the type."""
    i = np.arange(n, dtype=np.int64)
    return t.min_raw + (i * 37) % (t.max_raw - t.min_raw + 1)


def _program(cases) -> str:
    headers = ["ap_fixed.h", "ap_int.h", "nnet_utils/nnet_helpers.h", "nnet_utils/nnet_activation.h",
               "nnet_utils/nnet_activation_stream.h", "nnet_utils/nnet_types.h"]  # parameters.h's order
    parts = ["#include <cstdio>"] + [f'#include "{h}"' for h in headers] + ["static long long out_v[1 << 16];"]
    calls = []
    for n, (kind, in_t, out_t, opts, stream) in enumerate(cases):
        size = 1 << in_t.width
        res = "ap_uint<1>" if opts.get("uint1") else str(out_t)
        fields = [f"static const unsigned n_in = {size};", "static const unsigned reuse_factor = 1;",
                  f"static const unsigned io_type = nnet::{'io_stream' if stream else 'io_parallel'};"]
        if "table_t" in opts:
            fields += [f"static const unsigned table_size = {opts['table_size']};",
                       f"typedef {opts['table_t']} table_t;"]
        if "param_t" in opts:
            fields.append(f"typedef {opts['param_t']} param_t;")
        if "slope" in opts:  # hard_sigmoid's struct, as hls4ml writes it: no activ_config, typed constants
            (slope, slope_t), (shift, shift_t) = opts["slope"], opts["shift"]
            fields += [f"static const {slope_t} slope;", f"static const {shift_t} shift;"]
            parts.append(f"struct cfg{n} {{ {' '.join(fields)} }};\nconst {slope_t} cfg{n}::slope = {slope!r};\n"
                         f"const {shift_t} cfg{n}::shift = {shift!r};")
        else:
            parts.append(f"struct cfg{n} : nnet::activ_config {{ {' '.join(fields)} }};")
        data_t = f"nnet::array<{in_t}, {PACK}>" if stream else str(in_t)
        res_t = f"nnet::array<{res}, {PACK}>" if stream else res
        if kind in ("leaky_relu", "thresholded_relu", "elu"):
            targs, args = f"{data_t}, {opts['param_t']}, {res_t}, cfg{n}", f"in, {opts['param']!r}, out"
        elif kind == "prelu":
            targs, args = f"{data_t}, {opts['param_t']}, {res_t}, cfg{n}", "in, alpha, out"
        else:
            targs, args = f"{data_t}, {res_t}, cfg{n}", "in, out"
        alpha = ""
        if kind == "prelu":
            t = opts["param_t"]
            alpha = (f"static {t} alpha[{size}]; for (long long i = 0; i < {size}; i++) "
                     f"alpha[i].V = {t.min_raw}LL + (i * 37) % {t.max_raw - t.min_raw + 1}LL;")
        if stream:
            body = (f"hls::stream<{data_t}> in; hls::stream<{res_t}> out;"
                    f"for (long long k = 0; k < {size // PACK}; k++) {{ {data_t} p;"
                    f" for (int j = 0; j < {PACK}; j++) p[j].V = {in_t.min_raw}LL + k * {PACK} + j; in.write(p); }}"
                    f"nnet::{kind}<{targs}>({args});"
                    f"for (long long k = 0; k < {size // PACK}; k++) {{ {res_t} p = out.read();"
                    f" for (int j = 0; j < {PACK}; j++) out_v[k * {PACK} + j] = p[j].V.to_int64(); }}")
        else:
            body = (f"static {data_t} in[{size}]; static {res_t} out[{size}];"
                    f"for (long long i = 0; i < {size}; i++) in[i].V = {in_t.min_raw}LL + i;"
                    f"nnet::{kind}<{targs}>({args});"
                    f"for (long long i = 0; i < {size}; i++) out_v[i] = out[i].V.to_int64();")
        calls.append(f"{{ {alpha} {body} fwrite(out_v, sizeof(long long), {size}, stdout); }}")
    parts.append("int main() {\n" + "\n".join(calls) + "\n}")
    return "\n".join(parts)


def _expected(kind, in_t, out_t, opts, stream) -> np.ndarray:
    from hlsflow.emulator import activations, fixedpoint as fp

    options = {k: v for k, v in opts.items() if k in ("table_t", "table_size", "param_t", "uint1")}
    if kind == "prelu":
        options["param"] = _alphas(1 << in_t.width, opts["param_t"])
    elif "param" in opts:
        options["param"] = fp.from_float(opts["param"], opts["param_t"])
    for name in ("slope", "shift"):
        if name in opts:
            value, t = opts[name]
            options[name] = (int(fp.from_float(value, t)), t)
    run = activations.make(kind, in_t, out_t, stream=stream, **options)
    raw = np.arange(in_t.min_raw, in_t.max_raw + 1, dtype=np.int64)
    return run([(raw[None, :], in_t)])[0]


def test_every_activation_function_on_every_input(tmp_path):
    """Each nnet:: activation hls4ml writes (tables, computed ones, QKeras's binary and ternary tanh,
    relu6/relu1), io_parallel and io_stream, on every value of its input type: the same bits."""
    cases = _cases()
    (tmp_path / "acts.cpp").write_text(_program(cases))
    t = _templates()
    # -O0: the float code means the same at any level (no -ffast-math) and compiles in half the time
    subprocess.run(["g++", "-O0", "-std=c++17", f"-I{t / 'ap_types'}", f"-I{t}", "acts.cpp", "-o", "acts"],
                   cwd=tmp_path, check=True)
    out = np.frombuffer(subprocess.run(["./acts"], cwd=tmp_path, capture_output=True, check=True).stdout, np.int64)
    at = 0
    for kind, in_t, out_t, opts, stream in cases:
        n = 1 << in_t.width
        cpp, at = out[at:at + n], at + n
        fast = _expected(kind, in_t, out_t, opts, stream)
        bad = np.flatnonzero(cpp != fast)
        assert bad.size == 0, (f"{kind} {'stream' if stream else 'parallel'} {in_t} -> {out_t} {opts}: "
                               f"{bad.size} inputs differ, e.g. raw {bad[0] + in_t.min_raw}: "
                               f"C++ {cpp[bad[0]]}, fast {fast[bad[0]]}")
    assert at == out.size


# ------------------------------------------------------------------ whole models, layer by layer

def _flow_config(root: Path, model: Path, samples: Path, io_type: str, precision="ap_fixed<16,6>", layers=None) -> Path:
    """A flow config as `hlsflow init` writes it, with per-layer settings (types, TableSize, Implementation)."""
    from hlsflow.loading import load_keras_model
    from hlsflow.stages.starter import render_config, starter_hls_config

    hls = starter_hls_config(load_keras_model(model), precision=precision)
    for name, wanted in (layers or {}).items():
        entry = hls["LayerName"].setdefault(name, {})
        for key, value in wanted.items():
            if key == "Precision":
                entry.setdefault("Precision", {}).update(value)
            else:
                entry[key] = value
    path = root / f"flow-{io_type}.yml"
    path.write_text(render_config(hls, str(model), f"prj-{io_type}", str(samples), io_type=io_type))
    return path


def _spread_weights(model, x: np.ndarray, seed: int, spread: float):
    """Each Dense's weights scaled so its outputs on these samples have the standard deviation
    `spread`: the activations after them see values inside and beyond their tables' ranges."""
    from tensorflow.keras import layers

    rng = np.random.default_rng(seed)
    a = x
    for layer in model.layers[1:]:
        if isinstance(layer, layers.Dense):
            n_in, n_out = layer.get_weights()[0].shape
            w, b = rng.normal(0, 1, (n_in, n_out)), rng.normal(0, 0.5, n_out)
            w *= spread / max(np.std(a @ w + b), 1e-6)
            layer.set_weights([w, b * spread])
        elif isinstance(layer, layers.PReLU):
            layer.set_weights([rng.uniform(-0.5, 1.5, layer.get_weights()[0].shape)])
        a = np.asarray(layer(a))


def _activation_zoo(root: Path):
    """One MLP holding every activation Keras 2 gives hls4ml, a Dense before each; its last
    softmax the stable default, two inside the legacy and argmax implementations."""
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(4)
    acts = [layers.Activation("sigmoid", name="sigmoid"), layers.Activation("tanh", name="tanh"),
            layers.Activation("softsign", name="softsign"), layers.Activation("softplus", name="softplus"),
            layers.Activation("selu", name="selu"), layers.Activation("elu", name="elu"),
            layers.Activation("hard_sigmoid", name="hard_sigmoid"), layers.LeakyReLU(0.1, name="leaky"),
            layers.ThresholdedReLU(0.7, name="thresholded"), layers.ELU(0.6, name="elu_alpha"),
            layers.PReLU(name="prelu"), layers.ReLU(max_value=6.0, name="relu_max"),
            layers.Activation("relu", name="relu"), layers.Activation("softmax", name="sm_legacy"),
            layers.Activation("softmax", name="sm_argmax"), layers.Activation("softmax", name="softmax")]
    inp = tf.keras.Input((10,), name="x")
    a = inp
    for i, act in enumerate(acts):
        a = act(layers.Dense(10, name=f"d{i}")(a))
    model = tf.keras.Model(inp, a)
    x = np.random.default_rng(0).normal(0, 3, (150, 10)).astype(np.float32)
    _spread_weights(model, x, seed=1, spread=6.0)
    model.save(root / "zoo.keras")
    np.savez(root / "zoo.npz", X=x)
    return root / "zoo.keras", root / "zoo.npz", [layer.name for layer in acts]


ZOO_LAYERS = {
    "sigmoid": {"Precision": {"result": "ap_ufixed<8,0,AP_RND,AP_SAT>"}},
    "tanh": {"Precision": {"table": "ap_fixed<12,2,AP_RND>"}, "TableSize": 512},
    "softplus": {"Precision": {"table": "ap_ufixed<14,4>", "result": "ap_fixed<12,5,AP_RND_CONV,AP_SAT>"},
                 "TableSize": 2048},
    "selu": {"TableSize": 1000},
    "elu": {"Precision": {"result": "ap_fixed<10,3,AP_RND_CONV,AP_SAT>"}},
    "leaky": {"Precision": {"result": "ap_fixed<12,4,AP_RND,AP_SAT_SYM>"}},
    "sm_legacy": {"Implementation": "legacy"},
    "sm_argmax": {"Implementation": "argmax"},
}


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_every_keras_activation_layer_by_layer(tmp_path, io_type):
    """Every activation layer of a Keras 2 model, with tables of other sizes and types, rounding and
    saturating results, Resource strategy on the Dense layers of the stream design: every layer
    the same bits as hls4ml's trace, the output the same as predict()."""
    model, samples, names = _activation_zoo(tmp_path)
    layers = dict(ZOO_LAYERS)
    if io_type == "io_stream":
        layers.update({f"d{i}": {"Strategy": "Resource", "ReuseFactor": 2} for i in range(0, len(names), 3)})
    cfg = _flow_config(tmp_path, model, samples, io_type, layers=layers)
    compared, engine = _layerwise(cfg, 150, out_name=f"traced-{io_type}")
    assert {"sigmoid", "tanh", "softsign", "softplus", "selu", "elu", "hard_sigmoid", "leaky", "thresholded",
            "elu_alpha", "prelu", "relu_max", "relu", "sm_legacy", "sm_argmax", "softmax"} <= set(compared)


POOL = ["sigmoid", "tanh", "softsign", "softplus", "selu", "elu", "hard_sigmoid", "relu", "leaky", "thresholded",
        "elu_alpha", "prelu", "softmax"]


@st.composite
def activation_models(draw):
    """A random chain of Dense + activation, random types, tables and inputs, either io_type."""
    kinds = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=3))
    return {
        "kinds": kinds,
        "width": draw(st.integers(2, 10)),
        "precision": draw(st.sampled_from(["ap_fixed<16,6>", "ap_fixed<12,4>", "ap_fixed<10,5>", "ap_fixed<18,8>"])),
        "result": draw(st.sampled_from([None, "ap_fixed<10,3,AP_RND,AP_SAT>", "ap_ufixed<8,2,AP_RND_CONV,AP_SAT>",
                                        "ap_fixed<14,4,AP_RND_ZERO,AP_SAT_SYM>"])),
        "table": draw(st.sampled_from([None, ("ap_fixed<12,3,AP_RND>", 256), ("ap_fixed<20,4>", 4096),
                                       ("ap_ufixed<10,1>", 1000)])),
        "softmax": draw(st.sampled_from(["stable", "latency", "legacy", "argmax"])),
        "io_type": draw(st.sampled_from(["io_parallel", "io_stream"])),
        "spread": draw(st.sampled_from([1.0, 6.0, 20.0])),
        "alpha": draw(st.sampled_from([0.05, 0.3, 1.7])),
        "seed": draw(st.integers(0, 1000)),
    }


def _activation_layer(kind: str, name: str, alpha: float):
    from tensorflow.keras import layers

    if kind == "leaky":
        return layers.LeakyReLU(alpha, name=name)
    if kind == "thresholded":
        return layers.ThresholdedReLU(alpha, name=name)
    if kind == "elu_alpha":
        return layers.ELU(alpha, name=name)
    if kind == "prelu":
        return layers.PReLU(name=name)
    return layers.Activation(kind, name=name)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(spec=activation_models())
def test_random_activation_models_layer_by_layer(tmp_path_factory, spec):
    import tensorflow as tf
    from tensorflow.keras import layers

    root = tmp_path_factory.mktemp("acts")
    tf.keras.utils.set_random_seed(spec["seed"])
    inp = tf.keras.Input((spec["width"],), name="x")
    a, settings_ = inp, {}
    for i, kind in enumerate(spec["kinds"]):
        name = f"a{i}_{kind}"
        a = _activation_layer(kind, name, spec["alpha"])(layers.Dense(spec["width"], name=f"d{i}")(a))
        entry = settings_.setdefault(name, {})
        if spec["result"] and kind != "softmax":
            entry["Precision"] = {"result": spec["result"]}
        if spec["table"] and kind not in ("softmax", "relu", "leaky", "thresholded", "prelu", "hard_sigmoid"):
            entry.setdefault("Precision", {})["table"] = spec["table"][0]
            entry["TableSize"] = spec["table"][1]
        if kind == "softmax":
            entry["Implementation"] = spec["softmax"]
    model = tf.keras.Model(inp, a)
    x = np.random.default_rng(spec["seed"]).normal(0, 2, (40, spec["width"])).astype(np.float32)
    _spread_weights(model, x, spec["seed"], spec["spread"])
    model.save(root / "m.keras")
    np.savez(root / "s.npz", X=x)
    cfg = _flow_config(root, root / "m.keras", root / "s.npz", spec["io_type"], precision=spec["precision"],
                       layers=settings_)
    compared, _ = _layerwise(cfg, 40)
    assert set(settings_) <= set(compared)
