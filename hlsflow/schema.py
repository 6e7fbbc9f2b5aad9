"""jsonschema, imported without the one optional part that hlsflow's schemas never use."""

import sys


def jsonschema():
    """The jsonschema module. Its import also loads rfc3987_syntax when that is installed (the
    image has it for JupyterLab), which builds a parser for the "iri" formats: 1.4 s of CPU in
    every command that reads a config or a manifest. hlsflow's schemas check no format, so the first
    import here goes without it (jsonschema skips an optional format whose import fails);
    rfc3987_syntax itself stays importable."""
    if "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # makes that one import raise ImportError
        try:
            import jsonschema as module
        finally:
            del sys.modules["rfc3987_syntax"]
        return module
    import jsonschema as module
    return module
