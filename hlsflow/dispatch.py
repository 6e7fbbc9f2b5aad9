import os

def in_image():
    return os.environ.get("HLSFLOW_IN_IMAGE") == "1" or os.environ.get("HLSFLOW_NATIVE") == "1"
