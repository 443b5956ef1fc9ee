"""WHIP/WHEP from Python: the `--output whip:URL` sink and `headcast client`.

`WebRTCSession.open()` does the whole RFC 9725 exchange: offer → POST (application/sdp,
Bearer token) → 201 + answer + Location; close() DELETEs the Location and closes the
connection. The answer already holds every ICE candidate (aiortc gathers before it
answers), so nothing is trickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from urllib.parse import urljoin

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from streamer.errors import SignallingError, SinkUnavailableError, SourceLostError, reason
from streamer.frames import Frame, Sink
from streamer.sink_runner import SinkRunner, SinkStats
from streamer.sources import PacedReader, Source
from streamer.voice import VoiceFeed, VoiceListeners
from streamer.webrtc_audio import RECEIVER_HOLD_S, AudioConfig, AudioRelay, heard_chunks
from streamer.webrtc_tracks import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    AvatarTrack,
    FrameSlot,
    LatestWorker,
    LoopThread,
    to_video_frame,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndpointConfig:
    url: str  # the WHIP or WHEP endpoint, e.g. http://127.0.0.1:8080/whip
    token: str | None = None  # sent as Authorization: Bearer
    timeout_s: float = 15.0  # for the POST and for the connection to come up
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs; empty: host candidates only
    # run_client: no avatar frame back this long, the server is taken for gone. A server that
    # stops closes its connections, and the avatar's track ends at once; but where its
    # goodbye is lost (1 run in 10 of a test on this machine) the track ends only when ICE
    # gives up, after about 30 s, and a 30 s run had ended as if whole
    idle_timeout_s: float = 15.0


class WebRTCSession:
    """One WHIP (send, optionally receive back) or WHEP (receive) session. Async; one loop."""

    def __init__(self, config: EndpointConfig, pc: RTCPeerConnection) -> None:
        self.config = config
        self.pc = pc
        self.location: str | None = None  # the session resource (from the Location header)
        loop = asyncio.get_running_loop()
        self.remote_video: asyncio.Future[MediaStreamTrack] = loop.create_future()
        self.remote_audio: asyncio.Future[MediaStreamTrack] = loop.create_future()
        self._closed = False

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            remote = self.remote_video if track.kind == "video" else self.remote_audio
            if not remote.done():
                remote.set_result(track)

    @classmethod
    async def open(
        cls,
        config: EndpointConfig,
        send: MediaStreamTrack | None,
        receive: bool,
        *,
        send_audio: MediaStreamTrack | None = None,
        receive_audio: bool = False,
    ) -> WebRTCSession:
        """Negotiate a session. send: the video to send (WHIP); receive: want video back;
        send_audio: a voice to send with it; receive_audio: want audio (WHEP: the voice).
        Raises SignallingError with what to do when the server is unreachable or refuses."""
        if send is None and not receive:
            raise ValueError("a session must send, receive or both")
        ice = [RTCIceServer(url) for url in config.ice_servers]
        session = cls(config, RTCPeerConnection(RTCConfiguration(iceServers=ice)))
        direction = "sendrecv" if send and receive else "sendonly" if send else "recvonly"
        session.pc.addTransceiver(send if send is not None else "video", direction=direction)
        if send_audio is not None or receive_audio:
            both = send_audio is not None and receive_audio
            direction = "sendrecv" if both else "sendonly" if send_audio else "recvonly"
            session.pc.addTransceiver(send_audio or "audio", direction=direction)
        try:
            await session._negotiate()
        except BaseException:
            await session.pc.close()
            raise
        return session

    async def _negotiate(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(
                    self.config.url, data=self.pc.localDescription.sdp, headers=headers
                ) as response,
            ):
                body = await response.text()
                if response.status != 201:
                    raise SignallingError(_refusal(self.config.url, response.status, body,
                                                   bool(self.config.token)))
                self.location = urljoin(self.config.url, response.headers.get("Location", ""))
        except asyncio.TimeoutError as exc:  # its text is empty: it had printed "()"
            raise SignallingError(
                f"{self.config.url} did not answer within {self.config.timeout_s:g} s: is the "
                "server (e.g. `headcast serve`) running, and not too busy to answer?"
            ) from exc
        except aiohttp.ClientError as exc:
            raise SignallingError(
                f"cannot reach {self.config.url} ({reason(exc)}): check "
                "the URL and that the server (e.g. `headcast serve`) is running"
            ) from exc
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))

    async def wait_connected(self) -> None:
        """Until ICE + DTLS are up; SignallingError if that fails or takes too long."""
        deadline = time.monotonic() + self.config.timeout_s
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                raise SignallingError(
                    f"the WebRTC connection to {self.config.url} did not come up "
                    f"({self.pc.connectionState}): is a firewall blocking UDP?"
                )
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """DELETE the session resource and close the connection; safe to call again."""
        if self._closed:
            return
        self._closed = True
        if self.location:
            headers = {}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
                    http.delete(self.location, headers=headers),
                ):
                    pass
        await self.pc.close()


def _refusal(url: str, status: int, body: str, token_given: bool = False) -> str:
    if status == 401 and token_given:  # it had said "pass --token" to one who had
        return (f"{url} refused the token given: pass the one the server printed when it "
                "started")
    if status == 401:
        return f"{url} wants a token: pass --token (the server printed it when it started)"
    if status == 503:
        return f"{url} is full (too many sessions): close one or raise its --max-sessions"
    return f"{url} refused the session (HTTP {status}): {body.strip()[:200]}"


class WhipSink:
    """`--output whip:URL`: pushes the avatar to any WHIP ingest (RFC 9725).

    send() only replaces the frame in a slot; the outgoing track reads it at `fps` on this
    sink's own loop thread, so a slow network never blocks the pipeline.
    """

    name = "whip"

    def __init__(self, config: EndpointConfig, voice: VoiceFeed | None = None) -> None:
        self._config = config
        self._voice = voice  # a microphone sent with the avatar, delayed to meet it
        self._slot = FrameSlot()
        self._thread: LoopThread | None = None
        self._session: WebRTCSession | None = None
        self._relay: AudioRelay | None = None
        self._closed = False

    def open(self, width: int, height: int, fps: float) -> None:
        if self._thread is not None:
            raise RuntimeError("WhipSink.open() called twice")
        self._thread = LoopThread("headcast-whip")
        track = AvatarTrack(self._slot, fps if fps > 0 else 30.0, (width, height))

        async def connect() -> WebRTCSession:
            audio = None
            if self._voice is not None:
                self._relay = AudioRelay()
                self._relay.follow("voice", self._voice, self._slot.latency)
                audio = self._relay.subscribe()
            session = await WebRTCSession.open(
                self._config, send=track, receive=False, send_audio=audio)
            try:
                await session.wait_connected()
            except BaseException:
                await session.close()
                raise
            return session

        try:
            self._session = self._thread.run(connect())
        except BaseException as exc:
            self._close_relay()
            self._thread.close()
            if isinstance(exc, SignallingError):
                raise SinkUnavailableError(str(exc)) from exc
            raise

    def _close_relay(self) -> None:
        if self._relay is not None and self._thread is not None:
            with contextlib.suppress(Exception):
                self._thread.run(self._relay.close(), timeout=5)

    def send(self, frame: Frame) -> None:
        self._slot.put(frame)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            return
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._thread.run(self._session.close(), timeout=10)
        self._close_relay()
        self._thread.close()


# ---- headcast client ----------------------------------------------------------------


class SourceTrack(MediaStreamTrack):
    """Video track of a streamer.sources Source (camera or file): sends each frame it
    captures, newest first, stamped with its capture time. The blocking read() runs in a
    one-thread executor. When the source fails, the track ends and `error` says why. While
    the source reopens a camera that stopped delivering, it sends black frames at the
    camera's rate (sources.PacedReader): the server's avatar rests, and the session, whose
    video would otherwise stop, stays open."""

    kind = "video"

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._reader = PacedReader(source)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="headcast-source")
        self._first_ts: float | None = None
        self._last_pts = -1
        self.error: BaseException | None = None

    async def recv(self) -> VideoFrame:
        loop = asyncio.get_running_loop()
        frame: Frame | None = None
        while frame is None:
            if self.readyState != "live":
                raise MediaStreamError
            try:
                frame = await loop.run_in_executor(self._executor, self._reader.read, 0.5)
            except Exception as exc:  # SourceLostError, EOFError, VideoReadError
                self.error = exc
                self.stop()
                raise MediaStreamError from exc
        if self._first_ts is None:
            self._first_ts = frame.capture_ts
        pts = max(self._last_pts + 1, round((frame.capture_ts - self._first_ts) * VIDEO_CLOCK_RATE))
        self._last_pts = pts
        video_frame = to_video_frame(frame.image)
        video_frame.pts, video_frame.time_base = pts, VIDEO_TIME_BASE
        return video_frame

    def stop(self) -> None:
        super().stop()
        self._executor.shutdown(wait=False)


async def run_client(
    config: EndpointConfig,
    source: Source,
    sink: Sink,
    duration_s: float | None = None,
    on_connected: Callable[[], None] | None = None,
    voice: VoiceFeed | None = None,
    voice_back: VoiceListeners | None = None,
) -> SinkStats:
    """Send `source` to a `headcast serve` WHIP endpoint and feed the avatar to `sink`;
    `voice` (this machine's microphone) goes with it as it comes, for the server's viewers
    (the server delays it to meet the avatar). With `voice_back` (the recording's voice), the
    server sends that voice back, delayed as its viewers hear it, and each 20 ms is handed
    to `voice_back` as it arrives: beside the avatar frames, which are stamped on arrival too.

    The sink gets frames through a SinkRunner (its own thread, newest wins; opened at the
    first avatar frame's size). Runs until `duration_s` passes (or for ever), raising
    SourceLostError when the server ends the session first and the source's error when it
    fails; closes the session and the sink either way, not the source.
    → the sink's delivery stats.
    """
    track = SourceTrack(source)
    runner = SinkRunner(sink, source.fps, window=300)
    runner.start()
    convert = ThreadPoolExecutor(1, thread_name_prefix="headcast-client-decode")
    session: WebRTCSession | None = None
    worker: LatestWorker[None] | None = None
    relay = AudioRelay(AudioConfig(extra_delay_s=0.0)) if voice is not None else None
    hearing: asyncio.Future[None] | None = None
    try:
        audio = None
        if relay is not None and voice is not None:
            relay.follow("voice", voice, lambda: (0, 0.0))  # undelayed: `serve` delays it
            audio = relay.subscribe()
        back = voice_back is not None and audio is not None
        endpoint = replace(config, url=_with_query(config.url, "voice=back")) if back else config
        session = await WebRTCSession.open(endpoint, send=track, receive=True, send_audio=audio,
                                           receive_audio=back)
        await session.wait_connected()
        if on_connected is not None:
            on_connected()
        remote = await asyncio.wait_for(session.remote_video, config.timeout_s)
        if back and voice_back is not None:
            hearing = asyncio.ensure_future(_hear_back(session, voice_back))

        numbers = CameraFrameNumbers(source.fps)

        def deliver(frame: VideoFrame, received_ts: float, index: int) -> None:
            image = frame.to_ndarray(format="bgr24")
            runner.offer(Frame(image, received_ts, numbers.number(frame, index)))

        worker = LatestWorker(remote, deliver, convert)
        worker.start()
        await _until_done(worker, track, runner, duration_s, config.idle_timeout_s)
        return runner.stats(time.monotonic())
    finally:
        if hearing is not None:
            hearing.cancel()
        if worker is not None:
            worker.stop()
        track.stop()
        if relay is not None:
            await relay.close()
        if session is not None:
            await session.close()
        await asyncio.get_running_loop().run_in_executor(convert, runner.close)
        convert.shutdown(wait=False)


class CameraFrameNumbers:
    """Which camera frame each avatar frame that comes back was made from, counted from the
    first to come back. The server keeps each frame's pts (its capture time), so the frames
    it skipped (a renderer slower than the camera) show as gaps, which a recording fills
    with the frame before: counted one by one, a 25 fps file of an avatar coming back at 10
    fps played 2.5× too fast."""

    def __init__(self, fps: float) -> None:
        self._fps = fps
        self._last = -1

    def number(self, frame: VideoFrame, arrived: int) -> int:
        """frame: as received; arrived: its count among those received (where no pts)."""
        if frame.pts is None or frame.time_base is None:
            number = arrived
        else:
            number = round(float(frame.pts * frame.time_base) * self._fps)
        self._last = max(number, self._last + 1)
        return self._last


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def _hear_back(session: WebRTCSession, heard: VoiceListeners) -> None:
    """The sender's own voice as the server sends it back, to `heard`, stamped when it came
    less aiortc's hold on received audio (RECEIVER_HOLD_S), which the avatar frames it is
    laid beside do not wait (the server takes its own receiver's hold off the same way). A
    server that sends none (one from before `?voice=back`): the recording stays silent, said
    once."""
    if not session.remote_audio.done():  # set by the answer, before the connection
        logger.warning("the server sends no voice back: the recording has none")
        return
    async for samples, arrived in heard_chunks(session.remote_audio.result()):
        heard.hand(samples, arrived - RECEIVER_HOLD_S)


async def _until_done(
    worker: LatestWorker[None], track: SourceTrack, runner: SinkRunner, duration_s: float | None,
    idle_timeout_s: float = 15.0,
) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    ended = "the server ended the session (it was stopped, or dropped this client)"
    frames, last_frame = worker.frames_in, time.monotonic()
    while deadline is None or time.monotonic() < deadline:
        if track.error is not None:
            raise track.error
        if runner.failed:
            raise SinkUnavailableError(f"output {runner.name} failed: {runner.error}")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(worker.wait(), 0.25)  # raises what the worker raised
            # the avatar's track ended before the run did: once the client said nothing of
            # it and exited 0, its recording ending early without a word
            raise SourceLostError(ended)
        now = time.monotonic()
        if worker.frames_in != frames:
            frames, last_frame = worker.frames_in, now
        elif now - last_frame > idle_timeout_s:
            raise SourceLostError(f"no avatar frame for {idle_timeout_s:g} s: {ended}")


def whip_sink(
    url: str | None = None,
    token: str | None = None,
    timeout_s: float = 15.0,
    voice: VoiceFeed | None = None,
) -> WhipSink:
    """Sink-registry factory for `--output whip:URL` (create_sink("whip", url=URL))."""
    if not url or not url.startswith(("http://", "https://")):
        raise SinkUnavailableError(
            f"--output whip needs the ingest URL, e.g. whip:https://host/whip (got {url!r})"
        )
    return WhipSink(EndpointConfig(url=url, token=token, timeout_s=timeout_s), voice)
