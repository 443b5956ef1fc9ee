import subprocess
import sys

import pytest


def test_runtime_never_imports_torch():
    code = (
        "import sys\n"
        "import streamer.cli, streamer.animate, streamer.offline, streamer.pipeline\n"
        "import streamer.webrtc_server, streamer.webrtc_client\n"
        "from streamer.cli import build_parser\n"
        "build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_training_needs_no_mediapipe():
    """A GPU image with numpy 2 cannot install mediapipe 0.10.21: training and export draw
    the landmark image from the contour tables kept in streamer.mesh_contours, and need no
    PyAV (only packing encodes video)."""
    pytest.importorskip("torch")
    code = (
        "import sys\n"
        "sys.modules['mediapipe'] = sys.modules['av'] = None  # any import of them fails\n"
        "import models.train, models.data, models.finetune, models.pack, export.neural_export\n"
        "from streamer.landmark_image import landmark_image\n"
        "import numpy as np\n"
        "assert landmark_image(np.random.rand(478, 2) * 256, 256).any()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_contour_tables_are_mediapipes():
    from mediapipe.python.solutions import face_mesh_connections as C

    from streamer import mesh_contours as M

    for name in ("FACE_OVAL", "LEFT_EYEBROW", "RIGHT_EYEBROW", "NOSE", "LEFT_EYE", "RIGHT_EYE",
                 "LEFT_IRIS", "RIGHT_IRIS", "LIPS"):
        edges = getattr(M, name)
        assert len(set(edges)) == len(edges) and set(edges) == getattr(C, f"FACEMESH_{name}")
