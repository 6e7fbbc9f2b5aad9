"""`invoke kernel-signatures`: hlsflow/emulator/kernel_signatures.txt, the kernels the image
compiles ahead of time, written from what the fast engine compiles for the bundled models and the
tests' small CNN. Run it (in the image) after a change to kernels.py or to how the engine calls
it; tests/image/test_user_project.py fails while the image would still compile on first use."""

from ..files import REPO_ROOT

# (config or None, model, overrides): the bundled example and models, and the small CNN of the
# tests; HGQ's heterogeneous activations need io_parallel, as `hlsflow init` writes for them.
MODELS = (("project/hls4ml_config.yml", "models/model_2_15.keras", {}), (None, "models/digits_cnn.keras", {}),
          (None, "models/qkeras_cnn.keras", {}), (None, "models/qkeras_mlp.keras", {"io_type": "io_parallel"}),
          (None, "models/hgq_mlp.keras", {"io_type": "io_parallel"}), (None, "tests/data/tiny_cnn.keras", {}))


def record(scratch) -> int:
    """Emulates each of MODELS on a few random samples (its project written under `scratch`) and
    writes the signatures compiled meanwhile; returns how many."""
    import numpy as np

    from .. import library
    from ..emulator import precompile

    for i, (config, model, overrides) in enumerate(MODELS):
        cfg = library.load_config(REPO_ROOT / config if config else None, model=REPO_ROOT / model,
                                  out=f"{scratch}/{i}", **overrides)
        hls_model = library.convert(cfg).hls_model
        shape = tuple(hls_model.get_input_variables()[0].shape)
        library.emulate(hls_model, np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype(np.float32))
    lines = precompile.in_use()
    precompile.SIGNATURES.write_text(
        "# Written by `invoke kernel-signatures` (hlsflow/dev/kernel_signatures.py): the kernels the image\n"
        "# compiles ahead of time, one signature a line, as numba names the argument types.\n"
        + "".join(f"{line}\n" for line in lines))
    return len(lines)
