"""The reference network: a Mini-ResNet (ResNet-8 layout) for 32x32x3 images, 10 classes.

Layout (as in the MLPerf Tiny image-classification model):
  Conv 3x3/16 -> BN -> ReLU
  stage 1: [Conv 3x3/16 -> BN -> ReLU -> Conv 3x3/16 -> BN] + identity      -> Add -> ReLU
  stage 2: [Conv 3x3/32 s2 -> BN -> ReLU -> Conv 3x3/32 -> BN] + Conv 1x1/32 s2 -> Add -> ReLU
  stage 3: [Conv 3x3/64 s2 -> BN -> ReLU -> Conv 3x3/64 -> BN] + Conv 1x1/64 s2 -> Add -> ReLU
  GlobalAveragePooling -> Dense 10 -> softmax
About 12.5 M multiply-accumulates per image and 78 k parameters.

Also here: a deterministic synthetic 10-class 32x32x3 data set, for machines without CIFAR-10.
Each class is an oriented colour grating with its own angle, frequency and tint, drawn with a
random phase, contrast and noise, so a CNN has to learn real spatial filters to tell them apart.
A model trained on it is named and labelled "synthetic" wherever it goes.
"""

import numpy as np

INPUT_SHAPE = (32, 32, 3)
N_CLASSES = 10


def build_model(name: str = "mini_resnet"):
    import tensorflow as tf
    from tensorflow.keras import layers

    def conv_bn(x, filters, stride, tag):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{tag}_conv")(x)
        return layers.BatchNormalization(name=f"{tag}_bn")(x)

    def stage(x, filters, stride, tag):
        y = conv_bn(x, filters, stride, f"{tag}a")
        y = layers.Activation("relu", name=f"{tag}a_relu")(y)
        y = conv_bn(y, filters, 1, f"{tag}b")
        if stride != 1 or x.shape[-1] != filters:
            x = layers.Conv2D(filters, 1, strides=stride, name=f"{tag}_shortcut")(x)
        y = layers.Add(name=f"{tag}_add")([x, y])
        return layers.Activation("relu", name=f"{tag}_relu")(y)

    inputs = tf.keras.Input(shape=INPUT_SHAPE, name="image")
    x = conv_bn(inputs, 16, 1, "stem")
    x = layers.Activation("relu", name="stem_relu")(x)
    x = stage(x, 16, 1, "s1")
    x = stage(x, 32, 2, "s2")
    x = stage(x, 64, 2, "s3")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(N_CLASSES, name="logits")(x)
    outputs = layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def synthetic_dataset(n: int, seed: int = 0):
    """n images (float32 in [0, 1], quantised to 8 bits like CIFAR) and their labels.

    The same (n, seed) always gives the same arrays, on any machine.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, size=n)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 32.0
    angles = np.linspace(0, np.pi, N_CLASSES, endpoint=False)
    freqs = 2.0 + 1.5 * (np.arange(N_CLASSES) % 3)
    tints = np.stack(
        [0.5 + 0.5 * np.cos(2 * np.pi * (np.arange(N_CLASSES) / N_CLASSES + k / 3)) for k in range(3)],
        axis=1,
    ).astype(np.float32)
    images = np.empty((n, *INPUT_SHAPE), dtype=np.float32)
    for i, k in enumerate(labels):
        phase = rng.uniform(0, 2 * np.pi)
        contrast = rng.uniform(0.3, 0.5)
        wave = np.sin(2 * np.pi * freqs[k] * (xx * np.cos(angles[k]) + yy * np.sin(angles[k])) + phase)
        img = 0.5 + contrast * wave[..., None] * tints[k][None, None, :]
        img += rng.normal(0.0, 0.08, size=INPUT_SHAPE)
        images[i] = img
    images = np.round(np.clip(images, 0.0, 1.0) * 255.0) / 255.0
    return images.astype(np.float32), labels.astype(np.int64)
