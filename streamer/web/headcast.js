// WHIP / WHEP in the browser (RFC 9725 and the WHEP draft): one POST of a complete offer.
// The offer waits for ICE gathering, so no candidates are trickled afterwards.

const params = new URLSearchParams(location.search);

/** The token from ?token=, sent as `Authorization: Bearer` (null when none). */
export const token = params.get("token");
export const option = (name) => params.get(name);

function authHeaders(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

function gatheringComplete(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs); // send what we have rather than hang
  });
}

async function errorText(response) {
  try { return (await response.json()).error; } catch { return `HTTP ${response.status}`; }
}

/**
 * Negotiate one session. `send`: a video MediaStreamTrack to send or null; `receive`: want
 * video; `sendAudio`: a microphone track to send with it or null; `receiveAudio`: want audio.
 * Resolves to {pc, stream, close}; `stream` is the MediaStream of what is received.
 */
export async function connect(
  endpoint, { send = null, receive = true, sendAudio = null, receiveAudio = false } = {},
) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const stream = new MediaStream();
  pc.addEventListener("track", (e) => stream.addTrack(e.track));
  const direction = (out, into) => (out && into ? "sendrecv" : out ? "sendonly" : "recvonly");
  pc.addTransceiver(send || "video", { direction: direction(send, receive) });
  if (sendAudio || receiveAudio) {
    pc.addTransceiver(sendAudio || "audio", { direction: direction(sendAudio, receiveAudio) });
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const response = await fetch(endpoint, {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/sdp" }),
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    pc.close();
    throw new Error(await errorText(response));
  }
  const location = new URL(response.headers.get("Location"), response.url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    pc.close();
    // keepalive: the DELETE still goes out when the tab is closing
    await fetch(location, { method: "DELETE", headers: authHeaders(), keepalive: true })
      .catch(() => {});
  };
  window.addEventListener("pagehide", close);
  return { pc, stream, location, close };
}

/** What the avatar of a WHIP session waits for ("hold still: …", "no face in view"), or null:
 * GET on the session's location. */
export async function sessionStatus(location) {
  const response = await fetch(location, { headers: authHeaders() });
  if (!response.ok) throw new Error(await errorText(response));
  return (await response.json()).status;
}

/** Take a WHIP session's resting face again: POST to its location's /recalibrate. */
export async function recalibrateSession(location) {
  const response = await fetch(`${location}/recalibrate`, { method: "POST", headers: authHeaders() });
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

/** Upload a portrait image file (face: the N-th face from the left where the picture shows
 * several; "" or omitted: the only one); resolves to the server's JSON, throws its error text. */
export async function uploadPortrait(file, face = "") {
  const query = face ? `?face=${encodeURIComponent(face)}` : "";
  const response = await fetch(`/portrait${query}`, {
    method: "POST",
    headers: authHeaders({ "Content-Type": file.type || "application/octet-stream" }),
    body: file,
  });
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

/** The microphone, or null when there is none or it is not allowed (the caller says so). */
export async function microphone() {
  try {
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true }, video: false });
    return media.getAudioTracks()[0] || null;
  } catch {
    return null;
  }
}

/** Shows a microphone track's loudness (peak of the last 50 ms, 0..1; 0 while it is muted)
 * in a <meter>, made visible; → a function that stops it. */
export function levelMeter(track, meter) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  meter.hidden = false;
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let peak = 0;
    for (const x of samples) peak = Math.max(peak, Math.abs(x));
    meter.value = track.enabled ? peak : 0;
  }, 50);
  return () => { clearInterval(timer); context.close(); meter.value = 0; meter.hidden = true; };
}

// EBML (WebM) element ids, and the size that says "unknown" (MediaRecorder's Segment).
const SEGMENT = 0x18538067, INFO = 0x1549a966, DURATION = 0x4489;
const CLUSTER = 0x1f43b675, TRACKS = 0x1654ae6b, TRACK_ENTRY = 0xae, TRACK_NUMBER = 0xd7;
const TRACK_TYPE = 0x83, SIMPLE_BLOCK = 0xa3, BLOCK_GROUP = 0xa0, BLOCK = 0xa1;
const VIDEO = 1;  // a TrackType

/** An EBML variable-length number at data[at] → {value, length} (value -1: unknown size). */
function readVint(data, at) {
  const first = data[at];
  let length = 1;
  while (length <= 8 && !(first & (0x80 >> (length - 1)))) length += 1;
  if (length > 8 || at + length > data.length) return null;
  let value = first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let i = 1; i < length; i += 1) {
    value = value * 256 + data[at + i];
    allOnes = allOnes && data[at + i] === 0xff;
  }
  return { value: allOnes ? -1 : value, length };
}

/** The EBML element at data[at] → {id (its marker bits kept, as ids are written), sizeAt,
 * sizeLength, size (-1: unknown), body (where its content starts)}, or null. */
function element(data, at) {
  const idSize = readVint(data, at);
  if (!idSize) return null;
  let id = 0;
  for (let i = 0; i < idSize.length; i += 1) id = id * 256 + data[at + i];
  const sizeAt = at + idSize.length;
  const size = readVint(data, sizeAt);
  if (!size) return null;
  return { id, sizeAt, sizeLength: size.length, size: size.value, body: sizeAt + size.length };
}

/** The elements laid one after another in data[from, to) (an element's children). */
function* children(data, from, to) {
  for (let at = from; at < to;) {
    const child = element(data, at);
    if (!child || child.size < 0 || child.body + child.size > to) return;
    yield child;
    at = child.body + child.size;
  }
}

/** An unsigned integer element's value. */
function uint(data, child) {
  let value = 0;
  for (let i = child.body; i < child.body + child.size; i += 1) value = value * 256 + data[i];
  return value;
}

/** The number of the video track among a Tracks element's entries, or null. */
function videoTrack(data, tracks) {
  for (const entry of children(data, tracks.body, tracks.body + tracks.size)) {
    if (entry.id !== TRACK_ENTRY) continue;
    let number = null, type = null;
    for (const field of children(data, entry.body, entry.body + entry.size)) {
      if (field.id === TRACK_NUMBER) number = uint(data, field);
      if (field.id === TRACK_TYPE) type = uint(data, field);
    }
    if (type === VIDEO) return number;
  }
  return null;
}

/** Counts the video frames of a WebM as its bytes come, in order (MediaRecorder's chunks):
 * how many its encoder has written so far. `broken` once the bytes are not laid out as
 * expected: the count stays where it was. */
export class VideoBlocks {
  constructor() {
    this.pieces = [];  // bytes not yet counted: the start of an element whose end is to come
    this.held = 0;
    this.needed = 0;  // bytes it takes to go on
    this.track = null;
    this.count = 0;
    this.broken = false;
  }

  push(bytes) {
    if (this.broken) return;
    this.pieces.push(bytes);
    this.held += bytes.length;
    if (this.held < this.needed) return;  // a frame in many pieces is joined once
    const data = new Uint8Array(this.held);
    let filled = 0;
    for (const piece of this.pieces) { data.set(piece, filled); filled += piece.length; }
    let at = 0;
    this.needed = 0;
    while (at < data.length) {
      const next = element(data, at);
      if (!next) {  // cut short (its header's rest to come), or no element: 16 bytes are more
        this.broken = data.length - at >= 16;  // than any header takes
        this.needed = data.length - at + 1;
        break;
      }
      if (next.id === SEGMENT || next.id === CLUSTER || next.id === BLOCK_GROUP) {
        at = next.body;  // into it: MediaRecorder writes these of unknown size, as they grow
        continue;
      }
      if (next.size < 0) { this.broken = true; break; }
      if (next.body + next.size > data.length) { this.needed = next.body + next.size - at; break; }
      if (next.id === TRACKS) this.track = videoTrack(data, next);
      if ((next.id === SIMPLE_BLOCK || next.id === BLOCK) && this.track !== null &&
          readVint(data, next.body)?.value === this.track) this.count += 1;
      at = next.body + next.size;
    }
    const rest = this.broken ? new Uint8Array(0) : data.slice(at);
    this.pieces = [rest];
    this.held = rest.length;
  }
}

/** MediaRecorder's WebM says no duration (it writes as it goes), so players show none and
 * cannot seek: the file's first bytes with its Segment's Info given one (milliseconds, at
 * the default timecode scale), or null where they are not laid out as expected. */
export function withWebmDuration(data, milliseconds) {
  const header = element(data, 0);
  if (!header || header.size < 0) return null;
  const segment = element(data, header.body + header.size);
  // a Segment of known size would have to grow as well: not MediaRecorder's, left alone
  if (!segment || segment.id !== SEGMENT || segment.size >= 0) return null;
  let info = element(data, segment.body);
  while (info && info.size >= 0 && info.id !== INFO) {  // the Segment's children
    info = element(data, info.body + info.size);
  }
  if (!info || info.size < 0) return null;
  const end = info.body + info.size;
  if (end > data.length) return null;
  for (let at = info.body; at < end;) {  // one there already: leave it
    const child = element(data, at);
    if (!child || child.size < 0 || child.id === DURATION) return null;
    at = child.body + child.size;
  }
  const duration = new Uint8Array(11);  // id, size 8, float64 big-endian
  duration.set([0x44, 0x89, 0x88]);
  new DataView(duration.buffer).setFloat64(3, milliseconds);
  const grown = info.size + duration.length;  // in as many bytes as its size had
  if (grown >= 2 ** (7 * info.sizeLength) - 1) return null;
  const sizeBytes = new Uint8Array(info.sizeLength);
  let rest = grown;
  for (let i = info.sizeLength - 1; i >= 0; i -= 1) {
    sizeBytes[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  sizeBytes[0] |= 0x80 >> (info.sizeLength - 1);
  const out = new Uint8Array(data.length + duration.length);
  out.set(data.subarray(0, info.sizeAt), 0);
  out.set(sizeBytes, info.sizeAt);
  out.set(data.subarray(info.body, end), info.body);
  out.set(duration, end);
  out.set(data.subarray(end), end + duration.length);
  return out;
}

/** A recording's chunks (Blobs) with withWebmDuration applied to its header, however the
 * chunks split it: Chromium ends a chunk at its first write a timeslice after the last, so a
 * first frame that comes later than that leaves the EBML head alone in the first chunk and the
 * Segment's Info in the next. The chunks as they are where no header is found in the first MiB. */
async function withDuration(chunks, milliseconds) {
  let head = new Uint8Array(0);
  for (let n = 0; n < chunks.length && head.length < 2 ** 20; n += 1) {
    const more = new Uint8Array(await chunks[n].arrayBuffer());
    const joined = new Uint8Array(head.length + more.length);
    joined.set(head);
    joined.set(more, head.length);
    head = joined;
    const out = withWebmDuration(head, milliseconds);
    if (out) return [out, ...chunks.slice(n + 1)];
  }
  return chunks;
}

/** The video track's frames, each of another size than the first letterboxed into the first's
 * (a portrait switched while recording): a MediaRecorder keeps the size it started with in
 * its header and wrote the new one's frames beside it, which some players stretch to the
 * first's shape. Frames of the first size pass as they are. null where the browser lacks
 * what it takes (MediaStreamTrackProcessor and Generator, OffscreenCanvas): there the track
 * is recorded as it comes. → {track, stop(), firstAt(), close()}: firstAt, when the first
 * frame passed (performance.now()), or null before one has; close(), no frame passes from
 * now on → {fed: how many passed, at: when it closed}. */
function oneSize(source) {
  if (!("OffscreenCanvas" in window && "VideoFrame" in window)) return null;
  let canvas = null;
  let context = null;
  let first = null;
  let fed = 0;
  const passed = gated(source, (frame, pass) => {
    first ??= performance.now();
    fed += 1;
    const w = frame.displayWidth, h = frame.displayHeight;
    if (!canvas) {
      canvas = new OffscreenCanvas(w, h);
      context = canvas.getContext("2d");
    }
    if (w === canvas.width && h === canvas.height) { pass(frame); return; }
    const scale = Math.min(canvas.width / w, canvas.height / h);
    const dw = Math.round(w * scale), dh = Math.round(h * scale);
    context.fillStyle = "black";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(frame, Math.floor((canvas.width - dw) / 2),
      Math.floor((canvas.height - dh) / 2), dw, dh);
    const boxed = new VideoFrame(canvas, { timestamp: frame.timestamp });
    frame.close();
    pass(boxed);
  });
  if (!passed) return null;
  return { ...passed, firstAt: () => first, close: () => ({ fed, at: passed.close() }) };
}

/** A track of its own carrying `source`'s frames or sound, each through `each(data, pass)`,
 * until close(), nothing after: a recording that waits for its video encoder (Recorder.drain)
 * records nothing more meanwhile. → {track, stop(), close() → when it closed
 * (performance.now())}, or null where the browser lacks MediaStreamTrackProcessor and
 * Generator. */
function gated(source, each = (data, pass) => pass(data)) {
  if (!("MediaStreamTrackProcessor" in window && "MediaStreamTrackGenerator" in window)) {
    return null;
  }
  const processor = new MediaStreamTrackProcessor({ track: source });
  const generator = new MediaStreamTrackGenerator({ kind: source.kind });
  let closedAt = null;
  const gate = new TransformStream({
    transform(data, out) {
      if (closedAt !== null) data.close();
      else each(data, (item) => out.enqueue(item));
    },
  });
  // the source ending (a lost session) ends the generator's track, and the recording with it
  processor.readable.pipeThrough(gate).pipeTo(generator.writable).catch(() => {});
  return {
    track: generator,
    stop: () => generator.stop(),
    close: () => (closedAt ??= performance.now()),
  };
}

/** Records a MediaStream (the avatar that comes back, and the voice beside it when there is
 * one) from now, at the size of its first frame; stop() resolves to {url, seconds, bytes,
 * type}: an object URL of the file. */
export class Recorder {
  constructor(stream) {
    const audio = stream.getAudioTracks();
    const video = stream.getVideoTracks();
    this.sized = video.length ? oneSize(video[0]) : null;
    // the voice is closed with the frames, or where they cannot be, not at all
    this.voices = this.sized ? audio.map((track) => gated(track)) : [];
    if (this.voices.includes(null)) this.voices = [];
    const wanted = audio.length ? "video/webm;codecs=vp8,opus" : "video/webm;codecs=vp8";
    const type = MediaRecorder.isTypeSupported(wanted) ? wanted : "";
    const tracks = [...(this.sized ? [this.sized.track] : video),
      ...(this.voices.length ? this.voices.map((voice) => voice.track) : audio)];
    this.recorder = new MediaRecorder(new MediaStream(tracks), type ? { mimeType: type } : {});
    this.chunks = [];
    this.written = new VideoBlocks();
    let read = Promise.resolve();  // the chunks' bytes counted in the order they came
    this.recorder.addEventListener("dataavailable", (e) => {
      if (!e.data.size) return;
      this.chunks.push(e.data);
      read = read.then(async () => this.written.push(new Uint8Array(await e.data.arrayBuffer())));
    });
    this.started = performance.now();
    this.stopping = null;
    // listened for from the start: a recorder whose tracks all end (a lost session) stops
    // by itself, and a later stop() would wait for an event that came already
    this.stopped = new Promise((resolve) => {
      this.recorder.addEventListener("stop", async () => {
        const closed = this.sized?.close().at ?? performance.now();
        for (const track of [this.sized, ...this.voices]) track?.stop();
        // the file's time starts with its first sound, or without a voice with its first
        // frame, which a loaded machine has passed on over a second after Record; it ends
        // where the tracks were closed (Stop), however long the encoder took after
        const from = audio.length ? this.started : this.sized?.firstAt() ?? this.started;
        const seconds = (closed - from) / 1000;
        const type = this.recorder.mimeType || "video/webm";
        const chunks = await withDuration([...this.chunks], seconds * 1000);
        const blob = new Blob(chunks, { type });
        resolve({ url: URL.createObjectURL(blob), seconds, bytes: blob.size, type: blob.type });
      }, { once: true });
    });
    this.recorder.start(1000);  // a chunk a second: a long recording does not wait in one
  }

  /** Lets no more frames (nor sound) in, then waits for the encoder to write the frames it
   * was given: it falls behind (seconds behind on a loaded machine), and MediaRecorder's
   * stop() drops what it has not encoded. Done when all are written, or after 10 s, or when
   * none more came for five times the time a frame has taken so far (0.5–2 s): the encoder
   * drops frames when too many wait (unloaded, 18 of 61 at 720 x 1280 here), and those are
   * never written. */
  async drain() {
    if (!this.sized) return;
    const { fed, at: begun } = this.sized.close();
    for (const voice of this.voices) voice.close();
    const perFrame = (begun - this.started) / Math.max(this.written.count, 1);
    const idle = Math.min(Math.max(5 * perFrame, 500), 2000);
    let seen = this.written.count, moved = begun;
    while (this.recorder.state === "recording" && !this.written.broken &&
           this.written.count < fed) {
      const now = performance.now();
      if (this.written.count > seen) { seen = this.written.count; moved = now; }
      if (now - moved > idle || now - begun > 10_000) break;
      this.recorder.requestData();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  stop() {
    this.stopping ??= this.drain().then(() => {
      if (this.recorder.state !== "inactive") this.recorder.stop();
    });
    return this.stopped;
  }
}

/** Loudness of the audio a session receives, 0..1 (the newest inbound audio's level), or
 * null before any arrives: for tests and tools. */
export async function receivedAudioLevel(pc) {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      return report.audioLevel ?? null;
    }
  }
  return null;
}

/** Copy the current <video> picture into a canvas → {dataUrl, width, height, at}. */
export function grab(video, maxSide = 0) {
  const scale = maxSide && Math.max(video.videoWidth, video.videoHeight) > maxSide
    ? maxSide / Math.max(video.videoWidth, video.videoHeight) : 1;
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return {
    dataUrl: canvas.toDataURL("image/png"),
    width: canvas.width,
    height: canvas.height,
    at: performance.timeOrigin + performance.now(),
  };
}
