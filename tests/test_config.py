"""Configuration: hls4ml's schema, our Flow section, flags overriding the file, validation."""

import pytest

from hlsflow.config import DEFAULT_CONFIG, load_config, parse_precision, parse_reuse_factor
from hlsflow.errors import FlowError


def test_default_config_is_the_seed_with_io_stream():
    cfg = load_config()
    model = cfg.hls_config["Model"]
    assert model["ReuseFactor"] == 32 and model["Strategy"] == "Resource"
    assert model["Precision"] == {"default": "ap_fixed<16,6>"}
    assert (cfg.part, cfg.backend, cfg.project_name, cfg.io_type) == ("xc7z010clg400-1", "Vivado", "myproject",
                                                                      "io_stream")
    layers = cfg.hls_config["LayerName"]
    assert "s1_add" in layers and "gap" in layers
    for name, layer in layers.items():
        for key in ("weight", "bias", "result"):
            if key in layer["Precision"]:
                assert layer["Precision"][key] == "ap_fixed<16,6>", (name, key)
    assert cfg.keras_model == DEFAULT_CONFIG.parent.parent / "models" / "model_2_15.keras"
    assert cfg.flow["synthesis"]["csim"] is False


def test_flags_override_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(DEFAULT_CONFIG, out="o", part="xc7z020clg400-1", io_type="io_parallel", reuse_factor="8",
                      precision="ap_fixed<18,8>", clock="4")
    assert cfg.output_dir == tmp_path / "o"
    assert (cfg.part, cfg.io_type, cfg.clock_period) == ("xc7z020clg400-1", "io_parallel", 4.0)
    assert cfg.hls_config["Model"]["ReuseFactor"] == 8
    assert cfg.hls_config["LayerName"]["stem_conv"]["Precision"]["weight"] == "ap_fixed<18,8>"
    assert cfg.requested_reuse_factor("stem_conv") == 8


@pytest.mark.parametrize("text, signed, width, integer", [
    ("ap_fixed<16,6>", True, 16, 6), ("ap_ufixed<8, 3>", False, 8, 3), ("ap_int<8>", True, 8, 8),
    ("fixed<24,12,RND,SAT>", True, 24, 12), ("ap_fixed<16,6,AP_RND,AP_SAT>", True, 16, 6),
])
def test_parse_precision(text, signed, width, integer):
    t = parse_precision(text)
    assert (t.signed, t.width, t.integer) == (signed, width, integer)


def test_fixed_type_range():
    t = parse_precision("ap_fixed<16,6>")
    assert t.max_value == pytest.approx(32 - 2 ** -10) and t.min_value == -32 and t.resolution == 2 ** -10


@pytest.mark.parametrize("bad", ["ap_fixd<16,6>", "ap_fixed<16>", "float", "ap_fixed<0,0>", ""])
def test_bad_precision_is_one_sentence(bad):
    with pytest.raises(FlowError, match=r"is not a fixed-point type: write it like ap_fixed<16,6>"):
        load_config(precision=bad)


@pytest.mark.parametrize("bad", ["0", "-4", "3.5", "many", True])
def test_bad_reuse_factor(bad):
    with pytest.raises(FlowError, match="is not a positive integer"):
        load_config(reuse_factor=bad)


def test_reuse_factor_accepts_integers():
    assert parse_reuse_factor("32") == 32 and parse_reuse_factor(4) == 4


def test_any_part_name_runs_a_board_names_its_part_and_the_grammar_is_kept():
    assert load_config(part="xc7z999").part == "xc7z999"  # a device not in the table still runs
    assert load_config(part="pynq-z2").part == "xc7z020clg400-1"
    with pytest.raises(FlowError, match=r"Part 'xc7z020\]' is not a part name"):
        load_config(part="xc7z020]")


def test_bad_io_type_and_clock():
    with pytest.raises(FlowError, match="IOType 'io_serial' is unknown"):
        load_config(io_type="io_serial")
    with pytest.raises(FlowError, match="not a positive number"):
        load_config(clock="-1")


def test_bad_precision_inside_the_file(tmp_path):
    text = DEFAULT_CONFIG.read_text().replace("s1_add:\n      Precision: {result: 'ap_fixed<16,6>'}",
                                              "s1_add:\n      Precision: {result: 'ap_fixed<16,x>'}")
    assert "ap_fixed<16,x>" in text
    path = tmp_path / "c.yml"
    path.write_text(text)
    with pytest.raises(FlowError, match=r"'ap_fixed<16,x>' \(layer s1_add result\)"):
        load_config(path)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(FlowError, match="not found"):
        load_config(tmp_path / "nope.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("KerasModel: [unclosed\n")
    with pytest.raises(FlowError, match="not valid YAML"):
        load_config(broken)


# ---- The config file is checked against hlsflow/config.schema.json (jsonschema). ----

def _variant(tmp_path, old, new, name="c.yml"):
    text = DEFAULT_CONFIG.read_text()
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1).replace("../models/", str(DEFAULT_CONFIG.parent.parent / "models") + "/"))
    return path


@pytest.mark.parametrize("old, new, sentence", [
    ("IOType: io_stream", "IOTyp: io_stream", "IOTyp: unknown key in {path}; did you mean IOType?"),
    ("ClockPeriod: 5", "ClockPeriod: five", "ClockPeriod in {path} is 'five' but must be a number: fix it in the file."),
    ("    ReuseFactor: 32\n    Strategy: Resource", "    ReuseFactor: 32\n    Stratgy: Resource",
     "Stratgy: unknown key in HLSConfig > Model in {path}; did you mean Strategy?"),
    ("    stem_conv:\n      Precision:", "    stem_conv:\n      Precison:",
     "Precison: unknown key in HLSConfig > LayerName > stem_conv in {path}; did you mean Precision?"),
    ("Precision: {result: 'ap_fixed<16,6>', weight:", "Precision: {reslt: 'ap_fixed<16,6>', weight:",
     "reslt: unknown key in HLSConfig > LayerName > stem_conv > Precision in {path}; did you mean result?"),
    ("IOType: io_stream", "IOType: io_serial", "IOType in {path} is 'io_serial': use one of io_stream, io_parallel."),
    ("    csim: false ", "    cism: false ", "cism: unknown key in Flow > synthesis in {path}; did you mean csim?"),
    ("KerasModel: ../models/model_2_15.keras", "KerasJson: ../models/model_2_15.keras",
     "KerasJson in {path} is an hls4ml key this flow does not read: use KerasModel: a .json model with its "
     "weights beside it."),
])
def test_config_mistakes_are_one_sentence(tmp_path, old, new, sentence):
    path = _variant(tmp_path, old, new)
    with pytest.raises(FlowError) as raised:
        load_config(path)
    assert str(raised.value) == sentence.format(path=path)


def test_several_mistakes_are_counted(tmp_path):
    path = _variant(tmp_path, "IOType: io_stream\nClockPeriod: 5", "IOTyp: io_stream\nClockPeriod: five")
    with pytest.raises(FlowError, match=r"IOTyp: unknown key .*did you mean IOType \(1 more problem after this one\)\?"):
        load_config(path)


def test_shipped_configs_pass_the_schema():
    for path in (DEFAULT_CONFIG, DEFAULT_CONFIG.with_name("seed_config.yml")):
        cfg = load_config(path)  # a config the schema refuses raises here
        assert cfg.source == path and cfg.keras_model.is_file(), (path, cfg.keras_model)


def test_config_search_order(tmp_path, monkeypatch):
    monkeypatch.delenv("HLSFLOW_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    # Outside a checkout, with no config and no model: one sentence saying what to do.
    with pytest.raises(FlowError, match=r"No config given and no hls4ml_config.yml in .*: run `hlsflow init"):
        load_config()
    # A model alone: hlsflow's generic defaults, output under ./build/<model stem>.
    model = DEFAULT_CONFIG.parent.parent / "models" / "model_2_15.keras"
    cfg = load_config(model=str(model))
    assert cfg.source is None and cfg.io_type == "io_stream" and cfg.output_dir == tmp_path / "build" / "model_2_15"
    assert cfg.hls_config["Model"] == {"Precision": {"default": "ap_fixed<16,6>"}, "ReuseFactor": 1,
                                       "Strategy": "Latency"}
    # hls4ml_config.yml in the working directory is found; paths in it are relative to it.
    (tmp_path / "hls4ml_config.yml").write_text(f"KerasModel: {model}\nOutputDir: out\nIOType: io_parallel\n")
    cfg = load_config()
    assert cfg.source == tmp_path / "hls4ml_config.yml" and cfg.output_dir == tmp_path / "out"
    # HLSFLOW_CONFIG wins over it.
    monkeypatch.setenv("HLSFLOW_CONFIG", str(DEFAULT_CONFIG))
    assert load_config().source == DEFAULT_CONFIG


def test_relative_flags_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(str(DEFAULT_CONFIG), out="here", samples="s.npz")
    assert cfg.output_dir == tmp_path / "here" and cfg.flow["emulation"]["samples"] == str(tmp_path / "s.npz")
    assert cfg.keras_model == DEFAULT_CONFIG.parent.parent / "models" / "model_2_15.keras"
