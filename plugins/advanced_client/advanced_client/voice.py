"""Voice, offline: read-aloud with espeak-ng, dictation and commands with pocketsphinx.

* **Speech to text.** pocketsphinx 5's wheel carries the US-English acoustic model, a
  language model and the CMU dictionary: nothing is downloaded. Audio comes in as WAV
  (what the page records, or a file): PCM 8/16/24/32-bit or 32-bit float, any rate and
  channel count; it is mixed to mono and resampled to the model's 16 kHz here (a
  windowed-sinc low-pass before the interpolation, without which 22 kHz speech aliases
  into the band the model listens to and "chat" is no longer heard). Other formats, or a
  file that is not audio, are a 422; more than ``max_seconds`` is a 413.
* **Commands** use a JSGF grammar of a few phrases instead of the language model: a
  small closed vocabulary is what makes recognition dependable. The phrases were chosen
  by a measurement (every candidate spoken by espeak-ng's two English voices at two
  speeds): those heard wrongly were replaced, e.g. "new chat" (the final "t" is lost)
  by "new conversation", and trailing words that the decoder tends to lose are optional
  where the words before them already name one command. Measured on this machine: 93 of
  100 utterances (10 commands x espeak-ng's en-us and en voices x 5 speeds, 120-180
  words a minute) run the right command and none runs a wrong one. A hypothesis that is
  not a whole phrase is "not understood", never a guess.
* **Text to speech**: the ``espeak-ng`` program (Debian package ``espeak-ng``) writes a
  WAV. When it is missing, read-aloud says so (the plugin is "degraded").

Decoders are made once and reused under a lock: making one loads the model (about a
second for the language model), decoding is fast.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
import wave
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# numpy is imported by the functions that decode audio: importing it here was ~0.1 s of
# every app start, for a feature used when someone speaks.
if TYPE_CHECKING:
    import numpy as np

MODEL_RATE = 16_000
# Silence added around an utterance. Measured: 0.25 s cut the command score from 93 to
# 80 of 100 (cepstral mean normalisation averages the silence in); recordings carry
# their own pauses anyway.
PAD_SECONDS = 0.0
ESPEAK = "espeak-ng"


class AudioProblem(ValueError):
    """Audio the plugin cannot use: ``status`` 422 (not WAV, not PCM, empty) or 413 (too
    long)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class SpeechUnavailable(RuntimeError):
    """espeak-ng or pocketsphinx is not installed (the message says what to install)."""


# The command grammar: phrase -> command id. Page-side commands (open_*, stop_reading,
# send) are answered with an action for the page; the others run here (see the plugin).
# Words in [brackets] may be left out: the recogniser often loses an utterance's last
# word (measured: "read last message" heard as "read last"), and where the words before
# it already name one command, the short form is that command, not a guess.
GRAMMAR: dict[str, str] = {
    "new [conversation]": "new_conversation",
    "summarize [conversation]": "summarize",
    "read [the] last [message]": "read_last",
    "stop [reading]": "stop_reading",
    "send [message]": "send",
    "suggest [replies]": "suggest_replies",
    "open assistant": "open_assistant",
    "open messages": "open_messages",
    "open notes": "open_notes",
    "open settings": "open_settings",
}
# The phrases as the page lists them (every optional word said).
COMMANDS: dict[str, str] = {re.sub(r"[\[\]]", "", k).replace("read the last", "read last"):
                            v for k, v in GRAMMAR.items()}
_MATCHERS = [(re.compile("^" + re.sub(r" ?\[(\w+)\]", r"(?: \1)?", k) + "$"), v)
             for k, v in GRAMMAR.items()]


def grammar(phrases: dict[str, str] = GRAMMAR) -> str:
    """The JSGF grammar accepting exactly the command phrases (JSGF has the same
    ``[optional]`` syntax)."""
    alternatives = " | ".join(f"( {p} )" for p in phrases)
    return f"#JSGF V1.0;\ngrammar commands;\npublic <command> = {alternatives};\n"


@dataclass
class Audio:
    """Mono 16-bit PCM at ``rate``."""

    samples: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


def read_wav(data: bytes, max_seconds: float) -> Audio:
    """Decode a WAV file (see the module docstring for what is accepted)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioProblem(422, "audio: not a WAV file (RIFF/WAVE header missing); record "
                                "in the page or upload a .wav")
    data = _fix_stream_header(data)
    fmt = int.from_bytes(data[20:22], "little") if len(data) >= 22 else 0
    if fmt == 3 or (fmt == 0xFFFE and b"\x03\x00\x00\x00\x00\x00\x10\x00" in data[:80]):
        return _read_float_wav(data, max_seconds)
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.getnframes()
            if rate < 8000 or rate > 192_000:
                raise AudioProblem(422, f"audio: sample rate {rate} Hz is outside "
                                        "8000-192000")
            if frames / rate > max_seconds:
                raise AudioProblem(413, f"audio: {frames / rate:.1f} s is longer than the "
                                        f"{max_seconds:g} s allowed")
            raw = wav.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise AudioProblem(422, f"audio: unreadable WAV ({exc})") from None
    import numpy as np

    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128) * 256
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value & 0x800000, value - (1 << 24), value)
        samples = value.astype(np.float64) / 256
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536
    else:
        raise AudioProblem(422, f"audio: {width * 8}-bit samples are not supported")
    return _finish(samples, channels, rate)


def _read_float_wav(data: bytes, max_seconds: float) -> Audio:
    """IEEE-float WAV (what a browser's Web Audio gives), which ``wave`` refuses."""
    pos, channels, rate, bits, payload = 12, 0, 0, 0, b""
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = data[pos + 8:pos + 8 + size]
        if chunk == b"fmt ":
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
        elif chunk == b"data":
            payload = body
            break
        pos += 8 + size + (size & 1)
    if not channels or not rate or bits not in (32, 64) or not payload:
        raise AudioProblem(422, "audio: unreadable float WAV (fmt or data chunk missing)")
    if rate < 8000 or rate > 192_000:
        raise AudioProblem(422, f"audio: sample rate {rate} Hz is outside 8000-192000")
    import numpy as np

    dtype = "<f4" if bits == 32 else "<f8"
    usable = len(payload) - len(payload) % (bits // 8)
    samples = np.frombuffer(payload[:usable], dtype=dtype).astype(np.float64) * 32767
    if len(samples) / channels / rate > max_seconds:
        raise AudioProblem(413, f"audio: {len(samples) / channels / rate:.1f} s is longer "
                                f"than the {max_seconds:g} s allowed")
    return _finish(samples, channels, rate)


def _finish(samples: np.ndarray, channels: int, rate: int) -> Audio:
    if channels < 1:
        raise AudioProblem(422, "audio: no channels")
    usable = len(samples) - len(samples) % channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1)
    if not len(mono):
        raise AudioProblem(422, "audio: the file holds no samples")
    return Audio(mono, rate)


def resample(samples: np.ndarray, source: int, target: int = MODEL_RATE) -> np.ndarray:
    """``samples`` at ``target`` Hz: a 63-tap Hamming-windowed sinc low-pass below the
    new Nyquist frequency (when going down), then linear interpolation."""
    import numpy as np

    if source == target:
        return samples
    if target < source:
        cutoff = 0.45 * target / source  # cycles per input sample, a little under Nyquist
        n = np.arange(63) - 31
        taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(63)
        samples = np.convolve(samples, taps / taps.sum(), mode="same")
    count = int(len(samples) * target / source)
    positions = np.arange(count) * (source / target)
    return np.interp(positions, np.arange(len(samples)), samples)


def to_model_pcm(audio: Audio) -> bytes:
    """16 kHz mono signed 16-bit little-endian (with :data:`PAD_SECONDS` of silence on
    both sides)."""
    import numpy as np

    samples = resample(audio.samples, audio.rate)
    if PAD_SECONDS:
        pad = np.zeros(int(MODEL_RATE * PAD_SECONDS))
        samples = np.concatenate([pad, samples, pad])
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


@dataclass
class Recognition:
    text: str
    seconds: float
    words: list[str]
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "seconds": round(self.seconds, 2), "words": self.words,
                "score": self.score}


class Recognizer:
    """pocketsphinx decoders, made on first use and shared (one decode at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: Any = None
        self._dictation: Any = None

    @staticmethod
    def available() -> str | None:
        """None when pocketsphinx can be used, else why not."""
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            return "pocketsphinx is not installed (pip install 'pocketsphinx>=5')"
        return None

    def _decoder(self, kind: str) -> Any:
        why = self.available()
        if why:
            raise SpeechUnavailable(why)
        from pocketsphinx import Decoder

        if kind == "commands":
            if self._commands is None:
                decoder = Decoder(jsgf=False, lm=None, samprate=MODEL_RATE, logfn="/dev/null")
                decoder.add_jsgf_string("commands", grammar())
                decoder.activate_search("commands")
                self._commands = decoder
            return self._commands
        if self._dictation is None:
            self._dictation = Decoder(samprate=MODEL_RATE, logfn="/dev/null")
        return self._dictation

    def recognize(self, audio: Audio, kind: str = "dictation") -> Recognition:
        """What was said in ``audio``: free text (``dictation``) or one of the command
        phrases (``commands``, the text empty when none was heard whole)."""
        pcm = to_model_pcm(audio)
        with self._lock:
            decoder = self._decoder(kind)
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            # seg() is None when nothing at all was decoded (silence, noise).
            words = [s.word for s in (decoder.seg() if hyp is not None else None) or ()
                     if not s.word.startswith(("<", "[")) and s.word != "<sil>"]
        text = hyp.hypstr.strip() if hyp is not None else ""
        words = [re.sub(r"\(\d+\)$", "", w) for w in words]  # "read(2)": 2nd pronunciation
        score = round(float(hyp.prob), 4) if hyp is not None else None
        return Recognition(text, audio.seconds, words, score)


def command_of(text: str) -> str | None:
    """The command id of a recognised phrase (or its short form), None unless the text is
    one of them whole."""
    said = " ".join(text.lower().split())
    for pattern, command in _MATCHERS:
        if pattern.match(said):
            return command
    return None


def espeak_path() -> str | None:
    return shutil.which(ESPEAK)


def speak(text: str, voice: str = "en-us", words_per_minute: int = 160,
          timeout: float = 30.0) -> bytes:
    """``text`` spoken by espeak-ng, as WAV bytes (22,050 Hz mono 16-bit)."""
    program = espeak_path()
    if program is None:
        raise SpeechUnavailable("espeak-ng is not installed (Debian/Ubuntu: apt-get install "
                                "espeak-ng)")
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*(\+[A-Za-z0-9]+)?", voice):
        raise AudioProblem(422, f"voice: {voice!r} is not a voice name like en-us or en-gb")
    # The text goes on stdin, never on the command line: no option injection, no length
    # limit of argv; --stdout gives the WAV without a temporary file.
    done = subprocess.run([program, "-v", voice, "-s", str(words_per_minute), "--stdout"],
                          input=text.encode("utf-8"), capture_output=True, timeout=timeout,
                          check=False)
    if done.returncode != 0 or not done.stdout.startswith(b"RIFF"):
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise AudioProblem(422, f"voice: espeak-ng could not speak: {message}")
    return _fix_stream_header(done.stdout)


def _fix_stream_header(data: bytes) -> bytes:
    """A WAV written to a pipe (espeak-ng ``--stdout``, other streaming recorders) cannot
    seek back, so its RIFF and data sizes say 0xFFFFFFFF (or 0); set them from the real
    length, so that ``wave`` and every player read the file. A correct header is kept."""
    fixed = bytearray(data)
    fixed[4:8] = (len(data) - 8).to_bytes(4, "little")
    pos = 12
    while pos + 8 <= len(fixed):
        chunk = bytes(fixed[pos:pos + 4])
        size = int.from_bytes(fixed[pos + 4:pos + 8], "little")
        if chunk == b"data":
            left = len(fixed) - pos - 8
            if size == 0 or size > left:
                fixed[pos + 4:pos + 8] = left.to_bytes(4, "little")
            break
        pos += 8 + size + (size & 1)
    return bytes(fixed)


def voices() -> list[dict[str, str]]:
    """espeak-ng's English voices (name and language), for the page's picker."""
    program = espeak_path()
    if program is None:
        return []
    done = subprocess.run([program, "--voices=en"], capture_output=True, timeout=10,
                          check=False, text=True)
    found = []
    for line in done.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4:
            found.append({"language": parts[1], "name": parts[3]})
    return found
