import subprocess
import sys


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
