"""torch → ONNX export of headcast's generators, with a manifest the runtime checks on load."""
