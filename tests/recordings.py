"""Recordings made here for the audio tests: tones of a known length, in the formats the API reads."""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile

RATE = 16_000
CALL = ("[0:00 - 0:04] Alice: Good morning, thanks for calling Northwind.\n"
        "Bob: Hi, my order 4411 arrived broken.\n"
        "Alice: Sorry to hear that, I will send a new one today.\n")


def tone(seconds: float, fmt: str = "WAV", rate: int = RATE, pitch: float = 440.0) -> bytes:
    """`seconds` of a sine tone as a file of `fmt` (WAV, FLAC, MP3, OGG)."""
    samples = (0.3 * np.sin(2 * np.pi * pitch * np.arange(int(seconds * rate)) / rate)).astype("float32")
    subtype = {"MP3": "MPEG_LAYER_III", "OGG": "VORBIS"}.get(fmt, "PCM_16")
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def lying_wav(holds_s: float, claims_s: float, rate: int = RATE) -> bytes:
    """A WAV holding `holds_s` seconds whose data chunk claims `claims_s` seconds."""
    data = bytearray(tone(holds_s, rate=rate))
    at = data.find(b"data")
    data[at + 4:at + 8] = struct.pack("<I", min(0xFFFFFFFF, int(claims_s * rate) * 2))
    return bytes(data)


def lesson(folder, name: str = "call.wav", seconds: float = 12.3, transcript: str = CALL):
    """A recording with its sidecar transcript in `folder`; its path."""
    path = folder / name
    path.write_bytes(tone(seconds))
    path.with_suffix(".txt").write_text(transcript, encoding="utf-8")
    return path
