// Recording for dictation and voice commands: the microphone through an AudioWorklet,
// encoded as a 16-bit PCM WAV that the plugin's pocketsphinx routes take. The microphone
// is asked for only when the user presses a mic button; the app's permission gate asks
// the user once for this plugin (and refuses any other origin).

export class Recorder {
  constructor(maxSeconds = 30) {
    this.maxSeconds = maxSeconds;
    this.chunks = [];
    this.context = null;
    this.stream = null;
    this.timer = null;
  }

  get recording() { return this.context !== null; }

  async start(onLimit) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this window has no microphone access (no mediaDevices)");
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: {channelCount: 1, echoCancellation: true, noiseSuppression: true},
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("recorder-worklet.js");
    const source = this.context.createMediaStreamSource(this.stream);
    const node = new AudioWorkletNode(this.context, "plexichat-recorder");
    this.chunks = [];
    node.port.onmessage = (event) => this.chunks.push(event.data);
    source.connect(node);
    // Not connected to the speakers: nothing is heard back.
    this.timer = setTimeout(() => onLimit && onLimit(), this.maxSeconds * 1000);
  }

  async stop() {
    clearTimeout(this.timer);
    const rate = this.context ? this.context.sampleRate : 48000;
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.context) await this.context.close();
    this.context = null;
    this.stream = null;
    return encodeWav(this.chunks, rate);
  }
}

/** Float32 chunks (-1..1) as a mono 16-bit PCM WAV Blob. */
export function encodeWav(chunks, rate) {
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const buffer = new ArrayBuffer(44 + length * 2);
  const view = new DataView(buffer);
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);
  view.setUint16(22, 1, true); view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, length * 2, true);
  let at = 44;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++, at += 2) {
      const s = Math.max(-1, Math.min(1, chunk[i]));
      view.setInt16(at, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
  }
  return new Blob([buffer], {type: "audio/wav"});
}
