"""The voice round trip in the real app: espeak-ng speaks a command into a WAV,
pocketsphinx (the plugin's command grammar) recognises it and the command runs; read-aloud
gives a playable WAV; recordings at other rates, in stereo or as float are resampled;
what is not WAV is a 422 and what is too long a 413.

Skipped, with the reason, only where espeak-ng is not installed (Debian/Ubuntu:
``apt-get install espeak-ng``; ``./bootstrap.sh`` installs it).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from typing import Any

import numpy as np
import pytest

from plexichat_desktop.testing.harness import PlexiChatApp

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng): no voice to test with")


def spoken(text: str, wpm: int = 150) -> bytes:
    """``text`` as espeak-ng says it: a 22,050 Hz mono 16-bit WAV."""
    done = subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(wpm), "--stdout", text],
                          capture_output=True, check=True, timeout=30)
    return done.stdout


def pcm(data: bytes) -> tuple[np.ndarray, int]:
    """The samples and rate of a WAV (espeak-ng's streamed header sizes fixed first)."""
    from advanced_client.voice import read_wav

    audio = read_wav(data, 60)
    return audio.samples, audio.rate


def wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
    return out.getvalue()


def command(app: PlexiChatApp, audio: bytes, **params: Any) -> Any:
    answer = app.client.post("api/voice/command", content=audio, params=params,
                             headers={"Content-Type": "audio/wav"}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_spoken_command_is_recognised_and_runs(app: PlexiChatApp) -> None:
    before = {c["id"] for c in app.client.get("api/chats").json()["chats"]}
    result = command(app, spoken("new conversation"))
    assert result["heard"]["text"] == "new conversation"
    assert result["command"] == "new_conversation" and result["action"] == "open_chat"
    after = {c["id"] for c in app.client.get("api/chats").json()["chats"]}
    assert after - before == {result["chat"]["id"]}  # the command ran: a new chat exists


def test_read_last_message_speaks_the_answer(app: PlexiChatApp) -> None:
    chat = app.client.post("api/chats", json={}).json()
    with app.client.stream("POST", f"api/chats/{chat['id']}/send",
                           json={"content": "The meeting moved to Thursday."}) as r:
        assert r.status_code == 200
        r.read()
    result = command(app, spoken("read last message"), chat_id=chat["id"])
    assert result["command"] == "read_last" and result["action"] == "play"
    clip = app.client.get(result["clip_url"])  # relative to the page, as <audio> uses it
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(clip.content)) as w:  # a WAV every player reads
        assert w.getnframes() / w.getframerate() > 1.0
        seconds = w.getnframes() / w.getframerate()
    # Dictation takes it back as text (free speech through the general language model:
    # words, though not reliably the same words from a synthetic voice).
    heard = app.client.post("api/voice/transcribe", content=clip.content, timeout=60).json()
    assert heard["words"] and heard["text"]
    assert heard["seconds"] == round(seconds, 2)


def test_other_rates_stereo_and_float_are_resampled(app: PlexiChatApp) -> None:
    samples, rate = pcm(spoken("open messages"))
    x = np.arange(len(samples))
    for target in (11_025, 48_000):  # 8 kHz (telephone) lacks the band the model hears
        resampled = np.interp(np.arange(int(len(samples) * target / rate)) * rate / target,
                              x, samples)
        assert command(app, wav(resampled, target))["command"] == "open_messages"
    stereo = np.repeat(samples, 2)  # the same sound in both channels, interleaved
    assert command(app, wav(stereo, rate, channels=2))["command"] == "open_messages"
    # 32-bit float WAV (format 3), what Web Audio records, which the wave module refuses.
    floats = (samples / 32768).astype("<f4").tobytes()
    header = (b"RIFF" + (36 + len(floats)).to_bytes(4, "little") + b"WAVEfmt " +
              (16).to_bytes(4, "little") + (3).to_bytes(2, "little") +
              (1).to_bytes(2, "little") + rate.to_bytes(4, "little") +
              (rate * 4).to_bytes(4, "little") + (4).to_bytes(2, "little") +
              (32).to_bytes(2, "little") + b"data" + len(floats).to_bytes(4, "little"))
    assert command(app, header + floats)["command"] == "open_messages"


def test_unknown_speech_is_not_a_guess(app: PlexiChatApp) -> None:
    result = command(app, spoken("the weather is lovely in the mountains today"))
    assert result["command"] is None and result["action"] is None
    assert "say one of" in result["detail"]


def test_bad_audio_is_422_and_long_audio_413(app: PlexiChatApp) -> None:
    for body in (b"not audio at all", b"ID3\x03" + bytes(100), b""):
        r = app.client.post("api/voice/transcribe", content=body)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "audio"
    silence = wav(np.zeros(16_000 * 12), 16_000)  # 12 s, the limit is 10
    r = app.client.post("api/voice/transcribe", content=silence)
    assert r.status_code == 413 and r.json()["field"] == "audio"
    assert "10 s" in r.json()["detail"]


def test_long_text_is_read_up_to_the_limit(app: PlexiChatApp) -> None:
    clip = app.client.post("api/voice/speak", json={"text": "word " * 2000, "markdown": False})
    assert clip.status_code == 200, clip.text
    assert clip.json()["truncated"] is True
    with wave.open(io.BytesIO(app.client.get(clip.json()["clip_url"]).content)) as w:
        assert w.getnframes() > 0
