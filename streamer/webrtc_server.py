"""The avatar over WebRTC: an aiohttp app with WHIP (RFC 9725) ingest and WHEP playback.

Routes (all but /static/ need the token when one is set: `Authorization: Bearer T`, or
`?token=T` for pages opened in a browser):

    GET  /              serve mode: the webcam → avatar page; player mode: the WHEP player
    GET  /player        the WHEP player page
    POST /whep          SDP offer in → 201 + SDP answer + Location; plays the newest avatar
                        (serve mode: and the newest sender's voice, to an offer with audio)
    POST /whip          SDP offer in → 201 + SDP answer + Location; processes the sent video
                        (serve mode only). A sendrecv offer gets the avatar back on the same
                        connection; every result also goes to the WHEP viewers, and sent
                        audio goes to them too, delayed to meet its video
                        (streamer/webrtc_audio.py), never back to its sender but with
                        `?voice=back` (its own voice alone, delayed as the viewers', for
                        a sender that records the avatar: `headcast client --record`).
    DELETE /whip/{id}, /whep/{id}   end a session (404 when unknown)
    GET  /whip/{id}     {"status": what the session's avatar waits for, or null}: the page
                        shows it ("hold still: taking your resting face", "no face in view")
    POST /whip/{id}/recalibrate   take this session's resting face again (the page's button;
                        POST /recalibrate takes every session's)
    POST /portrait      image body (or multipart field "portrait") → enrolled for all sessions;
                        `?face=N`: a picture of several people, the N-th face from the left
    GET  /sessions      {"whip": n, "whep": n}

ICE gathering completes inside setLocalDescription, so answers carry every candidate and no
trickle (PATCH) is needed; PATCH answers 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import gc
import hmac
import html
import ipaddress
import json
import logging
import re
import secrets
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from streamer.errors import (
    HeadcastError,
    InsecureBindError,
    PortInUseError,
    SinkUnavailableError,
    reason,
)
from streamer.frames import Frame, FrameProcessor, StagedProcessor
from streamer.slow_hint import SlowHint, too_slow
from streamer.video_io import declared_size
from streamer.video_io import decode_image as decode_file_image
from streamer.voice import VoiceFeed
from streamer.webrtc_audio import AudioRelay
from streamer.webrtc_tracks import (
    AvatarTrack,
    FrameLatency,
    FrameSlot,
    LoopThread,
    ProcessedTrack,
)

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).with_name("web")
# what a browser shows where the token is missing or wrong (a <link> to no icon: no
# favicon request, which would be another 401)
TOKEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>headcast: token needed</title><link rel="stylesheet" href="/static/style.css"></head>
<body><h1>headcast</h1><p style="color: #f77">%s</p></body></html>
"""

SDP_TYPE = "application/sdp"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"  # interface to listen on; anything but loopback needs a token
    port: int = 8080  # TCP port; 0 picks a free one (see AvatarServer.url)
    token: str | None = None  # bearer token required on every request; None: no auth
    max_sessions: int = 4  # concurrent WHIP + WHEP sessions; more get 503
    max_upload_bytes: int = 8 * 1024 * 1024  # request body limit (portraits); larger get 413
    fps: float = 30.0  # frame rate WHEP viewers receive
    connect_timeout_s: float = 20.0  # a session not connected by then is closed
    # a session not connected after this long gives its place to a new offer when all
    # max_sessions are taken: a page reloaded while it connected leaves its session behind
    # (its answer never read, so never deleted), and three quick reloads had kept a second
    # user out until connect_timeout_s
    stale_connect_s: float = 5.0
    # a WHIP session sending no video this long is closed, and a WHEP session whose viewer
    # stopped reporting what it receives
    idle_timeout_s: float = 10.0
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs; empty: host candidates only
    tls_cert: str | None = None  # PEM certificate: serve https (browsers on other machines
    tls_key: str | None = None  # only allow the webcam on https pages); PEM private key
    # a staged processor's two halves on two threads per session (more frames per second,
    # about one stage more latency), as `stream` does; False: one thread
    overlap: bool = True
    # with the neural renderer, the log says once that this computer is too slow for it
    # where a session's avatar is made from too few of its frames this long (SlowHint)
    slow_hint_s: float = 10.0

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise InsecureBindError(
                f"listening on {self.host} without a token would let anyone on the network "
                "connect: pass --token, or leave it out and headcast generates one"
            )
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {self.max_sessions}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SinkUnavailableError("https needs both a certificate and its key (--cert, --key)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def resolve_token(host: str, token: str | None) -> str | None:
    """The token to require: the given one; none on loopback; else a fresh random one."""
    if token:
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(18)


class ProcessorFactory(Protocol):
    """Makes one FrameProcessor per WHIP session and enrolls uploaded portraits.

    create() and apply() run in the session's worker thread, enroll() and make_avatar() in
    a shared one, while the sessions' frames go on.
    """

    def create(self) -> FrameProcessor:
        """A new processor animating the current portrait."""
        ...

    def enroll(self, image: np.ndarray, face: int | None = None) -> object:
        """image: (H, W, 3) uint8 BGR → a portrait; it becomes the one new sessions get.
        face: the N-th face from the left where the picture shows several (None: the only
        or clearly largest one). Must raise NoFaceError, FaceChoiceError (or another
        HeadcastError) with a message when unusable."""
        ...

    def make_avatar(self, processor: FrameProcessor, portrait: object) -> object:
        """`portrait` (from enroll()) made ready for one live processor (made by create()):
        the slow part of a switch, done beside that processor's frames."""
        ...

    def apply(self, processor: FrameProcessor, avatar: object) -> None:
        """Switch a live processor (made by create()) to the avatar make_avatar() made it."""
        ...


@dataclass
class Session:
    """One peer connection: a WHIP sender (with its processor) or a WHEP viewer."""

    id: str
    kind: str  # "whip" or "whep"
    pc: RTCPeerConnection
    executor: ThreadPoolExecutor | None = None  # one worker: the processor's thread
    finisher: ThreadPoolExecutor | None = None  # a staged processor's second half
    processor: FrameProcessor | None = None
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    voice_back: bool = False  # a WHIP sender that asked for its own voice (?voice=back)
    created: float = field(default_factory=time.monotonic)


def _processed(session: Session) -> ProcessedTrack | None:
    """A WHIP session's processed video (the avatar it sends back), once its video came."""
    return next((t for t in session.tracks if isinstance(t, ProcessedTrack)), None)


async def _control(session: Session, fn: Callable[..., object], *args: object) -> None:
    """fn(*args) on a WHIP session's processor thread, between frames (a staged processor is
    switched only while no frame is between its halves)."""
    processed = _processed(session)
    if processed is not None:
        await processed.control(fn, *args)
    elif session.executor is not None:
        await asyncio.get_running_loop().run_in_executor(session.executor, fn, *args)


def _nothing() -> None:
    pass


# hosts that listen on every address, and the one this machine opens them at
WILDCARD_HOSTS = {"0.0.0.0": "localhost", "": "localhost", "::": "localhost"}


def _offered(offer_sdp: str) -> list[tuple[str, str]]:
    """An SDP offer's m-lines → [(kind, the offerer's direction)]; [] when it offers no
    media. Raises ValueError when it does not parse (aiortc's parser raises what it meets:
    ValueError, IndexError, KeyError, AttributeError...)."""
    from aiortc.sdp import SessionDescription

    try:
        media = SessionDescription.parse(offer_sdp).media
    except Exception as exc:
        raise ValueError(reason(exc)) from exc
    return [(m.kind, m.direction or "sendrecv") for m in media]


def token_query(token: str | None) -> str:
    """"?token=…" for a printed address, escaped ('my+secret#1' had printed an address that
    was refused: + reads as a space, # ends the query); "" without a token."""
    from urllib.parse import quote

    return f"?token={quote(token, safe='')}" if token else ""


def _sends_video(offered: list[tuple[str, str]]) -> bool:
    """Whether an SDP offer (as _offered gives it) sends video."""
    return any(kind == "video" and direction in ("sendonly", "sendrecv")
               for kind, direction in offered)


def _video_latency(session: Session) -> FrameLatency | None:
    """How long a WHIP session's moment takes to show in the avatar (None before a frame),
    with the number of the avatar frame it is read from: that frame's latency, plus half
    the time between avatar frames, which a moment waits on average for the processor to
    take a frame of it (newer frames are taken, the ones in between dropped: at 5 avatar
    frames a second, 100 ms)."""
    processed = _processed(session)
    if processed is None or processed.worker.frames_done == 0:
        return None
    return (processed.worker.frames_done,
            processed.last_latency_s + 0.5 * processed.last_interval_s)


class AvatarServer:
    """The aiohttp app and its WebRTC sessions; lives on one asyncio loop.

    slot: where the avatar frames WHEP viewers see come from (a sink or WHIP results).
    processors: set for `headcast serve` (WHIP + portrait upload); None for playback only.
    on_recalibrate: called by `POST /recalibrate` (the live pipeline's recalibrate()).
    """

    def __init__(
        self,
        config: ServerConfig,
        slot: FrameSlot | None = None,
        processors: ProcessorFactory | None = None,
        on_recalibrate: Callable[[], None] | None = None,
        voice: VoiceFeed | None = None,
    ) -> None:
        self.config = config
        self.slot = slot if slot is not None else FrameSlot()
        self.processors = processors
        self.on_recalibrate = on_recalibrate
        # serve mode: the newest sender's microphone goes on to the viewers; playback: this
        # machine's (`stream --voice`), delayed as long as a frame takes to reach the slot
        self.audio = AudioRelay() if processors is not None or voice is not None else None
        self._voice = voice
        self.sessions: dict[str, Session] = {}
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._enroll_executor = ThreadPoolExecutor(1, thread_name_prefix="headcast-enroll")
        self._closed = False
        self._slow_said = False  # SlowHint's word, once for all sessions

    @property
    def url(self) -> str:
        """Where this machine reaches the server. A wildcard host (0.0.0.0, ::) is no address
        to open: a browser on http://0.0.0.0 has no camera (not a secure context), where
        http://localhost has one."""
        host = WILDCARD_HOSTS.get(self.config.host, self.config.host)
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"

    def count(self, kind: str) -> int:
        return sum(1 for s in list(self.sessions.values()) if s.kind == kind)

    # ---- lifecycle -------------------------------------------------------------------

    def make_app(self) -> web.Application:
        # SDP offers and portraits are the only bodies; larger ones get 413
        app = web.Application(
            client_max_size=self.config.max_upload_bytes,
            middlewares=[self._auth_middleware],
        )
        app.router.add_get("/", self._index)
        app.router.add_get("/player", self._page("player.html"))
        app.router.add_static("/static/", WEB_DIR)
        app.router.add_get("/sessions", self._sessions)
        for kind in ("whip", "whep"):
            app.router.add_post(f"/{kind}", self._offer_handler(kind))
            app.router.add_delete(f"/{kind}/{{id}}", self._delete_handler(kind))
            app.router.add_patch(f"/{kind}/{{id}}", self._patch)
        app.router.add_get("/whip/{id}", self._status)
        app.router.add_post("/whip/{id}/recalibrate", self._recalibrate_session)
        app.router.add_post("/portrait", self._portrait)
        app.router.add_post("/recalibrate", self._recalibrate)
        return app

    async def start(self) -> None:
        """Bind and serve. Raises PortInUseError / SinkUnavailableError when it cannot."""
        if self._voice is not None and self.audio is not None:
            self.audio.follow("voice", self._voice, self.slot.latency)
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            site = web.TCPSite(
                self._runner, self.config.host, self.config.port, ssl_context=_tls(self.config)
            )
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            if self.audio is not None:
                await self.audio.close()
            raise _bind_error(self.config, exc) from exc
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close every session and stop listening; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(self.close_session(sid) for sid in list(self.sessions)))
        if self.audio is not None:
            await self.audio.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._enroll_executor.shutdown(wait=False)

    # ---- sessions --------------------------------------------------------------------

    async def close_session(self, session_id: str) -> bool:
        """End one session and free its connection, tracks and worker; False if unknown."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        for task in session.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self.audio is not None:
            self.audio.unpublish(session_id)
        for track in session.tracks:
            track.stop()
        await session.pc.close()
        loop = asyncio.get_running_loop()
        if session.finisher is not None:  # let a frame in its second half finish first
            await loop.run_in_executor(session.finisher, _nothing)
            session.finisher.shutdown(wait=False)
        if session.executor is not None:
            if session.processor is not None:
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(session.executor, session.processor.close)
            session.executor.shutdown(wait=False)
            if not self._closed:  # soon: once this coroutine has let go of the session too
                loop.call_soon(lambda: loop.run_in_executor(None, give_back_memory))
        logger.info("%s session %s closed", session.kind, session_id)
        return True

    def _new_session(self, kind: str) -> Session:
        ice = [RTCIceServer(url) for url in self.config.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))
        session = Session(uuid.uuid4().hex, kind, pc)
        self.sessions[session.id] = session

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close_session(session.id)

        session.tasks.append(asyncio.ensure_future(self._connect_deadline(session)))
        return session

    async def _close_stale(self) -> None:
        """Close the sessions that have not connected within stale_connect_s."""
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if (session.pc.connectionState != "connected"
                    and now - session.created > self.config.stale_connect_s):
                logger.info("%s session %s: not connected after %.0f s, closed for a new one",
                            session.kind, session.id, now - session.created)
                await self.close_session(session.id)

    async def _connect_deadline(self, session: Session) -> None:
        await asyncio.sleep(self.config.connect_timeout_s)
        if session.pc.connectionState != "connected":
            logger.info("%s session %s never connected", session.kind, session.id)
            await self.close_session(session.id)

    async def _setup_whep(self, session: Session, offered: list[tuple[str, str]]) -> None:
        tracks: list[MediaStreamTrack] = [AvatarTrack(self.slot, self.config.fps)]
        wants_audio = any(kind == "audio" for kind, _ in offered)
        if self.audio is not None and wants_audio:
            tracks.append(self.audio.subscribe())
        for track in tracks:
            session.tracks.append(track)
            session.pc.addTrack(track)
        session.tasks.append(asyncio.ensure_future(self._viewer_watchdog(session)))

    async def _setup_whip(self, session: Session) -> None:
        assert self.processors is not None
        loop = asyncio.get_running_loop()
        session.executor = ThreadPoolExecutor(1, thread_name_prefix=f"headcast-{session.id[:6]}")
        session.processor = await loop.run_in_executor(session.executor, self.processors.create)
        if self.config.overlap and isinstance(session.processor, StagedProcessor):
            session.finisher = ThreadPoolExecutor(
                1, thread_name_prefix=f"headcast-{session.id[:6]}-finish")

        @session.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self.audio is not None:
                self.audio.publish(session.id, track, lambda: _video_latency(session))
                if session.voice_back:  # its own voice, delayed as the viewers hear it
                    own = self.audio.subscribe(hears=session.id)
                    session.tracks.append(own)
                    session.pc.addTrack(own)
                return
            if track.kind != "video" or _processed(session) is not None:
                session.tasks.append(asyncio.ensure_future(_discard(track)))
                return
            assert session.processor is not None and session.executor is not None
            processed = ProcessedTrack(
                track, session.processor, session.executor, on_result=self.slot.put,
                finish_executor=session.finisher,
            )
            processed.start()
            session.tracks.append(processed)
            session.pc.addTrack(processed)  # sendrecv offers get the avatar back
            session.tasks.append(asyncio.ensure_future(self._idle_watchdog(session, processed)))

    async def _viewer_watchdog(self, session: Session) -> None:
        """Close a WHEP session whose viewer stopped sending RTCP receiver reports (every
        WebRTC stack sends one a second or so while it receives): a killed viewer sends no
        DTLS close, and its session held one of --max-sessions for the ~30 s of ICE consent
        expiry. Counted from its first report: a viewer that never got a frame is left to
        ICE."""
        from aiortc import clock

        timeout = self.config.idle_timeout_s
        sender = next((s for s in session.pc.getSenders()
                       if s.track is not None and s.track.kind == "video"), None)
        while sender is not None and session.id in self.sessions:
            await asyncio.sleep(min(1.0, timeout / 4))
            try:
                report = await sender.getStats()
            except Exception:  # its transport is gone: closed meanwhile
                return
            heard = [stats.timestamp for stats in report.values()
                     if stats.type == "remote-inbound-rtp"]
            if heard and (clock.current_datetime() - max(heard)).total_seconds() > timeout:
                logger.info("whep session %s: its viewer sent no report for %.0f s",
                            session.id, timeout)
                await self.close_session(session.id)

    async def _idle_watchdog(self, session: Session, track: ProcessedTrack) -> None:
        """Close a WHIP session whose video stopped (a killed browser sends no DTLS close;
        ICE consent expiry would take ~30 s)."""
        timeout = self.config.idle_timeout_s
        tick = min(1.0, timeout / 4)
        hint = self._slow_hint(session, tick)
        last_count, last_seen = -1, time.monotonic()
        while session.id in self.sessions:
            await asyncio.sleep(tick)
            if hint is not None and not self._slow_said:
                hint.count(track.worker.frames_in, track.worker.frames_done)
            now = time.monotonic()
            if track.worker.frames_in != last_count:
                last_count, last_seen = track.worker.frames_in, now
            elif now - last_seen > timeout:
                logger.info("whip session %s sent no video for %.0f s", session.id, timeout)
                await self.close_session(session.id)

    def _slow_hint(self, session: Session, tick: float) -> SlowHint | None:
        """A session's SlowHint, counted every `tick` seconds, where the processors' factory
        says (its `renderer`, as AnimatorFactory's) they use the neural renderer: the log
        says once, for all sessions, that this computer is too slow for it."""
        if getattr(self.processors, "renderer", None) != "neural":
            return None

        def say(made: int, given: int) -> None:  # counted only while nothing was said
            self._slow_said = True
            logger.warning("session %s: %s", session.id, too_slow(
                round(made / tick), round(given / tick), "its sender", "serve"))

        return SlowHint(say, max(1, round(self.config.slow_hint_s / tick)))

    # ---- handlers --------------------------------------------------------------------

    @web.middleware
    async def _auth_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        token = self.config.token
        if token and not request.path.startswith("/static/"):
            given = request.query.get("token", "")
            auth = request.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                message = ("missing or wrong token: send 'Authorization: Bearer TOKEN' or "
                           "open the page with ?token=TOKEN (headcast printed it when it "
                           "started)")
                headers = {"WWW-Authenticate": 'Bearer realm="headcast"'}
                if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                    # a person at a browser: a page, where JSON had been shown raw
                    return web.Response(status=401, text=TOKEN_PAGE % html.escape(message),
                                        content_type="text/html", headers=headers)
                return _error(401, message, headers=headers)
        return await handler(request)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        page = "index.html" if self.processors is not None else "player.html"
        return web.FileResponse(WEB_DIR / page)

    def _page(self, name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(WEB_DIR / name)

        return handler

    async def _sessions(self, request: web.Request) -> web.Response:
        return web.json_response({"whip": self.count("whip"), "whep": self.count("whep")})

    def _offer_handler(self, kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await self._offer(request, kind)

        return handler

    async def _offer(self, request: web.Request, kind: str) -> web.Response:
        if kind == "whip" and self.processors is None:
            return _error(
                404,
                "this server only plays the avatar (WHEP at /whep); to send a camera, "
                "run `headcast serve` and POST to its /whip",
            )
        if request.content_type != SDP_TYPE:
            return _error(415, f"send the SDP offer with Content-Type: {SDP_TYPE}")
        try:
            offer_sdp = await request.text()
        except (UnicodeDecodeError, LookupError):  # not text, or a charset Python lacks
            return _error(400, "the SDP offer is not text: send it as UTF-8")
        voice = request.query.get("voice")
        if voice not in (None, "back") or (voice and kind != "whip"):
            return _error(400, f"voice={voice}: the one value is voice=back, on /whip (a "
                          "sender's own voice back with its avatar, to record both)")
        try:
            offered = _offered(offer_sdp)
        except ValueError as exc:
            return _error(400, f"cannot read this SDP offer ({exc})")
        if kind == "whip" and offered and not _sends_video(offered):
            return _error(400, "a WHIP offer to headcast must send video (the face that "
                          "drives the avatar); a voice goes with it, not alone")
        if kind == "whep" and offered and not any(
                k == "video" and d in ("recvonly", "sendrecv") for k, d in offered):
            return _error(400, "a WHEP offer must receive video (the avatar)")
        if len(self.sessions) >= self.config.max_sessions:
            await self._close_stale()
        if len(self.sessions) >= self.config.max_sessions:
            return _error(
                503,
                f"all sessions are in use ({self.config.max_sessions} at most): close one, or "
                "start the server with a larger --max-sessions",
                headers={"Retry-After": "5"},
            )
        if not offered:  # aiortc took such an offer on /whip, and answered it with no media
            return _error(400, "not an SDP offer of media: it has no m= line")
        session = self._new_session(kind)
        session.voice_back = voice == "back"
        try:
            await (self._setup_whip(session) if kind == "whip"
                   else self._setup_whep(session, offered))
        except (ValueError, TypeError) as exc:
            await self.close_session(session.id)
            return _error(400, f"cannot use this SDP offer: {exc}")
        except HeadcastError as exc:  # e.g. the processor cannot load its models
            await self.close_session(session.id)
            return _error(500, str(exc))
        except Exception:
            await self.close_session(session.id)
            raise
        try:
            await session.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await session.pc.setLocalDescription(await session.pc.createAnswer())
        except Exception as exc:  # aiortc meets a malformed offer with whatever it raises
            await self.close_session(session.id)
            logger.info("%s offer refused: %r", kind, exc)
            return _error(400, f"cannot use this SDP offer ({reason(exc)})")
        logger.info("%s session %s opened", kind, session.id)
        return web.Response(
            status=201,
            body=session.pc.localDescription.sdp.encode(),
            content_type=SDP_TYPE,
            headers={"Location": f"/{kind}/{session.id}"},
        )

    def _delete_handler(self, kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            session = self._session(request, kind)
            if session is None:
                return _error(404, "no such session (it ended or never existed)")
            await self.close_session(session.id)
            return web.Response(status=200)

        return handler

    async def _patch(self, request: web.Request) -> web.Response:
        # Trickle ICE and ICE restarts are not supported: answers hold all candidates.
        return _error(405, "trickle ICE is not supported", headers={"Allow": "DELETE"})

    def _session(self, request: web.Request, kind: str) -> Session | None:
        """The live session of this kind named by the request's {id}, or None."""
        session = self.sessions.get(request.match_info["id"])
        return session if session is not None and session.kind == kind else None

    async def _status(self, request: web.Request) -> web.Response:
        session = self._session(request, "whip")
        if session is None:
            return _error(404, "no such WHIP session")
        processor = session.processor
        return web.json_response({"status": processor.status() if processor else None})

    async def _recalibrate_session(self, request: web.Request) -> web.Response:
        session = self._session(request, "whip")
        if session is None or session.processor is None:
            return _error(404, "no such WHIP session")
        await _control(session, session.processor.recalibrate)
        return web.json_response({"ok": True, "recalibrated": 1})

    async def _portrait(self, request: web.Request) -> web.Response:
        if self.processors is None:
            return _error(404, "this server has no portrait to change (run `headcast serve`)")
        face = request.query.get("face", "")
        if face and not (face.isascii() and face.isdigit() and int(face) >= 1):  # not "²"
            return _error(400, f"face must be a face's number, 1 for the leftmost, got {face!r}")
        if (request.content_length or 0) > self.config.max_upload_bytes:
            return _upload_too_large(self.config.max_upload_bytes)
        try:
            data = await _read_upload(request)
        except web.HTTPRequestEntityTooLarge:
            return _upload_too_large(self.config.max_upload_bytes)
        # told by its header, before it is decoded: a few MB of PNG can decode to gigabytes
        declared = declared_size(data)
        if declared is not None and declared[0] * declared[1] > MAX_IMAGE_PIXELS:
            return _too_many_pixels(*declared)
        loop = asyncio.get_running_loop()
        # off the loop: a 12-megapixel JPEG takes up to 0.7 s here
        image = await loop.run_in_executor(None, decode_image, data)
        if image is None:
            return _error(415, "not an image: upload a JPEG, PNG, WebP, BMP or TIFF portrait "
                          "photo")
        if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:  # it had been "not an image"
            return _too_many_pixels(image.shape[1], image.shape[0])
        try:
            portrait = await loop.run_in_executor(
                self._enroll_executor, self.processors.enroll, image, int(face) if face else None
            )
        except HeadcastError as exc:
            return _error(422, as_query(str(exc)))
        updated = 0
        for session in list(self.sessions.values()):
            if session.processor is None:
                continue
            avatar = await loop.run_in_executor(
                self._enroll_executor, self.processors.make_avatar, session.processor,
                portrait)
            try:
                await _control(session, self.processors.apply, session.processor, avatar)
            except RuntimeError:  # its executor shut down: the session ended meanwhile
                if session.id in self.sessions:
                    raise
                continue
            updated += 1
        return web.json_response({"ok": True, "sessions_updated": updated})


    async def _recalibrate(self, request: web.Request) -> web.Response:
        """Take the neutral face again: every WHIP session's processor, and the pipeline."""
        count = 0
        for session in list(self.sessions.values()):
            if session.processor is not None:
                await _control(session, session.processor.recalibrate)
                count += 1
        if self.on_recalibrate is not None:
            self.on_recalibrate()
            count += 1
        if count == 0 and self.processors is None:
            return _error(404, "nothing to recalibrate: no live stream is running")
        return web.json_response({"ok": True, "recalibrated": count})


def give_back_memory() -> None:
    """Free a closed session's objects now (its connection, tracks and processor sit in
    reference cycles until a collection) and hand the freed memory back to the system
    (glibc keeps it in its arenas, one per thread that allocated: each session's threads
    made new ones). A session's Animator, made and used on fresh threads and closed, 12
    times in one process: RSS 282 → 653 MB as it was, 280 → 354 MB with this after each."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): nothing to do
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def as_query(message: str) -> str:
    """An enrollment's message, which names the command line's --face N, as an upload's: its
    ?face=N ("--face 9 is not one of them" had answered a POST /portrait?face=9)."""
    return re.sub(r"--face (\w+)", r"?face=\1", message)


MAX_IMAGE_PIXELS = 40_000_000  # a portrait larger than this is a mistake or a bomb


def _too_many_pixels(width: int, height: int) -> web.Response:
    return _error(413, f"the picture is {width}x{height}, {width * height / 1e6:.0f} "
                  f"megapixels: upload one of at most {MAX_IMAGE_PIXELS // 1_000_000}")


def decode_image(data: bytes) -> np.ndarray | None:
    """Uploaded bytes → (H, W, 3) uint8 BGR, or None when they are not an image."""
    if not data:
        return None
    return decode_file_image(np.frombuffer(data, np.uint8))


async def _read_upload(request: web.Request) -> bytes:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        part = form.get("portrait")
        if part is None or not hasattr(part, "file"):
            return b""
        return part.file.read()
    return await request.read()


async def _discard(track: MediaStreamTrack) -> None:
    """Read and drop a track nobody uses (its receiver would otherwise queue frames)."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": message}),
        content_type="application/json",
        headers=headers,
    )


def _upload_too_large(limit: int) -> web.Response:
    return _error(413, f"upload larger than {limit // (1024 * 1024)} MiB: send a smaller image")


def _tls(config: ServerConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SinkUnavailableError(
            f"cannot use the certificate {config.tls_cert} with key {config.tls_key} ({exc}): "
            "pass PEM files of one pair"
        ) from exc
    return context


def _bind_error(config: ServerConfig, exc: OSError) -> SinkUnavailableError:
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"port {config.port} on {config.host} is already in use: stop the program "
            "using it, or pass --port with another number"
        )
    return SinkUnavailableError(
        f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}): "
        "check --host names an address of this machine"
    )


class ServerThread:
    """An AvatarServer on its own loop in a background thread (sinks, tests).

    start() returns once the port is bound (or raises PortInUseError); close() ends every
    session and the thread, and is safe to call more than once. Also a context manager:
    `with ServerThread(config) as server:` starts it and closes it on the way out.
    """

    def __init__(
        self,
        config: ServerConfig,
        slot: FrameSlot | None = None,
        processors: ProcessorFactory | None = None,
        on_recalibrate: Callable[[], None] | None = None,
        voice: VoiceFeed | None = None,
    ) -> None:
        self._thread = LoopThread("headcast-webrtc")
        self.server = AvatarServer(config, slot, processors, on_recalibrate, voice)
        self._closed = False

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout: float = 10.0) -> None:
        try:
            self._thread.run(self.server.start(), timeout)
        except BaseException:
            self._thread.close()
            raise

    def session_count(self, kind: str | None = None) -> int:
        async def count() -> int:
            if kind is None:
                return len(self.server.sessions)
            return self.server.count(kind)

        return self._thread.run(count(), timeout=5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._thread.run(self.server.close(), timeout=15)
        self._thread.close()

    def __enter__(self) -> ServerThread:
        self.start()  # on failure start() has closed its thread already
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class WebRTCSink:
    """`--output webrtc`: serves a page and WHEP; every viewer gets the newest frame.

    send() only replaces the frame in a slot, so it never blocks the pipeline; each viewer
    track reads the slot at `fps` on the server's loop, so a slow viewer delays only itself.
    """

    name = "webrtc"

    def __init__(
        self,
        config: ServerConfig = ServerConfig(),
        announce: Callable[[str], None] = _print_to_stderr,
        on_recalibrate: Callable[[], None] | None = None,
        voice: VoiceFeed | None = None,
    ) -> None:
        self._config = config
        self._announce = announce
        self._on_recalibrate = on_recalibrate
        self._voice = voice  # a microphone the viewers hear with the avatar
        self._slot = FrameSlot()
        self._server: ServerThread | None = None
        self._closed = False

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def url(self) -> str | None:
        return None if self._server is None else self._server.url

    def open(self, width: int, height: int, fps: float) -> None:
        if self._server is not None:
            raise RuntimeError("WebRTCSink.open() called twice")
        config = dataclasses.replace(self._config, fps=fps if fps > 0 else self._config.fps)
        server = ServerThread(
            config, self._slot, on_recalibrate=self._on_recalibrate, voice=self._voice)
        try:
            server.start()
        except PortInUseError as exc:  # the server's hint names serve's --port
            raise PortInUseError(
                f"port {config.port} on {config.host} is already in use: stop the program "
                f"using it, or give another port: --output webrtc:PORT") from exc
        self._server = server
        query = token_query(config.token)
        self._announce(
            f"headcast: avatar at {self._server.url}/{query}  (WHEP: {self._server.url}/whep)"
        )

    def send(self, frame: Frame) -> None:
        self._slot.put(frame)

    def viewer_count(self) -> int:
        return 0 if self._server is None else self._server.session_count("whep")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()


def webrtc_sink(
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    max_sessions: int = 4,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    on_recalibrate: Callable[[], None] | None = None,
    voice: VoiceFeed | None = None,
) -> WebRTCSink:
    """Sink-registry factory for `--output webrtc` (create_sink("webrtc", port=…))."""
    config = ServerConfig(
        host=host,
        port=port,
        token=resolve_token(host, token),
        max_sessions=max_sessions,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    return WebRTCSink(config, on_recalibrate=on_recalibrate, voice=voice)
