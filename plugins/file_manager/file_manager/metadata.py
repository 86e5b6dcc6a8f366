"""What a file says about itself: EXIF of images (Pillow), the document information of
PDFs (pypdf) and the tags of audio files (mutagen). Each library is optional and imported
on first use; a file whose library is missing says so instead of failing."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

IMAGE = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".gif", ".bmp"}
AUDIO = {".mp3", ".flac", ".ogg", ".opus", ".m4a", ".mp4", ".wav", ".aiff", ".wma", ".aac"}
PACKAGES = {"image": ("PIL", "pillow"), "pdf": ("pypdf", "pypdf"), "audio": ("mutagen",
                                                                         "mutagen")}
MAX_VALUE = 300


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE:
        return "image"
    if suffix == ".pdf":
        return "pdf"
    if suffix in AUDIO:
        return "audio"
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace").rstrip("\x00")
    text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def read(path: Path) -> dict[str, Any]:
    """``{"kind", "fields", "missing"}``; ``missing`` names the package to install."""
    kind = kind_of(path)
    if kind is None:
        return {"kind": None, "fields": {}, "missing": None}
    module, package = PACKAGES[kind]
    try:
        importlib.import_module(module)
    except ImportError:
        return {"kind": kind, "fields": {}, "missing": package}
    reader = {"image": _image, "pdf": _pdf, "audio": _audio}[kind]
    try:
        fields = reader(path)
    except Exception as exc:  # a damaged file: say what the library said
        return {"kind": kind, "fields": {}, "missing": None,
                "error": f"{type(exc).__name__}: {exc}"}
    return {"kind": kind, "fields": fields, "missing": None}


def _image(path: Path) -> dict[str, str]:
    from PIL import ExifTags, Image

    with Image.open(path) as img:
        fields = {"Format": _text(img.format), "Size": f"{img.width} x {img.height}",
                  "Mode": _text(img.mode)}
        exif = img.getexif()
        for tag, value in exif.items():
            fields[ExifTags.TAGS.get(tag, f"Tag {tag}")] = _text(value)
        for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items():
            fields[ExifTags.TAGS.get(tag, f"Tag {tag}")] = _text(value)
    return fields


def _pdf(path: Path) -> dict[str, str]:
    from pypdf import PdfReader

    reader = PdfReader(path)
    fields = {"Pages": str(len(reader.pages)), "Encrypted": str(reader.is_encrypted)}
    for key, value in (reader.metadata or {}).items():
        fields[str(key).lstrip("/")] = _text(value)
    return fields


def _audio(path: Path) -> dict[str, str]:
    import mutagen

    audio = mutagen.File(path)
    if audio is None:
        raise ValueError("not an audio format mutagen knows")
    fields: dict[str, str] = {}
    info = getattr(audio, "info", None)
    if info is not None and getattr(info, "length", None):
        fields["Length"] = f"{info.length:.1f} s"
    for key in ("bitrate", "sample_rate", "channels"):
        value = getattr(info, key, None)
        if value:
            fields[key.replace("_", " ").capitalize()] = str(value)
    for key, value in (audio.tags or {}).items():
        shown = value.text if hasattr(value, "text") else value
        if isinstance(shown, list):
            shown = ", ".join(str(v) for v in shown)
        fields[str(key)] = _text(shown)
    return fields
