"""Keras 3 backends for the keras3 lane: how long Keras takes to import and to predict with a small
MLP (the bundled Keras 3 model's shape), in whatever venv runs it. Run once per backend:

    KERAS_BACKEND=jax        VENV/bin/python bench/keras3_backends.py
    KERAS_BACKEND=tensorflow VENV/bin/python bench/keras3_backends.py

Prints one JSON line; bench/results/keras3-lane-2026-12-07.md holds the numbers and the choice.
"""

import json
import os
import statistics
import sys
import time


def main() -> None:
    started = time.perf_counter()
    import keras
    import numpy as np

    imported = time.perf_counter() - started
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(5, activation="softmax")])
    x = rng.normal(size=(1000, 16)).astype("float32")
    timings = {}
    for name, run in (("predict(1000)", lambda: model.predict(x, batch_size=1000, verbose=0)),
                      ("predict_on_batch(1000)", lambda: model.predict_on_batch(x)),
                      ("predict(1)", lambda: model.predict(x[:1], verbose=0))):
        first = time.perf_counter()
        run()  # the first call traces/compiles
        first = time.perf_counter() - first
        runs = []
        for _ in range(20):
            t = time.perf_counter()
            run()
            runs.append(time.perf_counter() - t)
        timings[name] = {"first_s": round(first, 4), "median_ms": round(1000 * statistics.median(runs), 3)}
    print(json.dumps({"backend": keras.backend.backend(), "keras": keras.__version__, "python": sys.version.split()[0],
                      "import_s": round(imported, 2), "timings": timings,
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
