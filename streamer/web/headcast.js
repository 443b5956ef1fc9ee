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

/** Records a MediaStream (the avatar that comes back, and the voice beside it when there is
 * one) from now; stop() resolves to {url, seconds, bytes, type}: an object URL of the file. */
export class Recorder {
  constructor(stream) {
    const audio = stream.getAudioTracks().length > 0;
    const wanted = audio ? "video/webm;codecs=vp8,opus" : "video/webm;codecs=vp8";
    const type = MediaRecorder.isTypeSupported(wanted) ? wanted : "";
    this.recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    this.chunks = [];
    this.recorder.addEventListener("dataavailable", (e) => {
      if (e.data.size) this.chunks.push(e.data);
    });
    this.started = performance.now();
    // listened for from the start: a recorder whose tracks all end (a lost session) stops
    // by itself, and a later stop() would wait for an event that came already
    this.stopped = new Promise((resolve) => {
      this.recorder.addEventListener("stop", () => {
        const blob = new Blob(this.chunks, { type: this.recorder.mimeType || "video/webm" });
        resolve({
          url: URL.createObjectURL(blob),
          seconds: (performance.now() - this.started) / 1000,
          bytes: blob.size,
          type: blob.type,
        });
      }, { once: true });
    });
    this.recorder.start(1000);  // a chunk a second: a long recording does not wait in one
  }

  stop() {
    if (this.recorder.state !== "inactive") this.recorder.stop();
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
