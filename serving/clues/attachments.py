"""Attachments of a clue (附件): 现场核查记录, 病历 scans and other papers an investigator gathers.

An attachment is kept in the clue store itself (its bytes beside its row), with the SHA-256 of its
content; it is append-only like the audit log (a wrong file is superseded by a new one, never changed),
and its hash is checked again every time it is read, so that a file handed on is the file that was
stored. What is accepted is decided from the content, not from what the client says it is: PDF, JPEG,
PNG and TIFF (scans and photos), at most :data:`MAX_BYTES`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from serving.clues.access import mask_id

__all__ = ["ATTACHMENT_KINDS", "MAX_BYTES", "MEDIA_TYPES", "AttachmentRefused", "checked_attachment", "media_type_of",
           "safe_filename"]

ATTACHMENT_KINDS: dict[str, str] = {
    "inspection_record": "现场核查记录",
    "medical_record": "病历",
    "other": "其他材料",
}
MAX_BYTES = 20 * 1024 * 1024  # a multi-page scan at 300 dpi

# the first bytes of each accepted format (its "magic number")
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}
_EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif"}
MEDIA_TYPES = tuple(_SIGNATURES)  # what an attachment may be, and is served as


class AttachmentRefused(ValueError):
    """A file the clue store does not take (empty, too large, of another format, of an unknown kind)."""


def media_type_of(content: bytes) -> str | None:
    """The accepted format ``content`` is (by its first bytes), or None."""
    for media_type, signatures in _SIGNATURES.items():
        if content.startswith(signatures):
            return media_type
    return None


def safe_filename(name: str | None, media_type: str) -> str:
    """The file's name as it may be stored and shown: no folders, no control characters, resident IDs
    masked, at most 110 characters before the extension of its real format."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().strip(".")
    stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", base)
    stem = mask_id(stem) or ""
    return (stem[:110] or "附件") + _EXTENSIONS[media_type]


def checked_attachment(content: bytes, filename: str | None, kind: str) -> dict:
    """What the store keeps of an uploaded file: ``{kind, filename, media_type, bytes, sha256}``; raises
    :class:`AttachmentRefused` (with the reason in Chinese) for a file it does not take."""
    if kind not in ATTACHMENT_KINDS:
        raise AttachmentRefused(f"未知的附件类别 (unknown attachment kind) {kind!r}; 可用 (known): "
                                + ", ".join(f"{k} {v}" for k, v in ATTACHMENT_KINDS.items()))
    if not content:
        raise AttachmentRefused("附件为空 (the file is empty)")
    if len(content) > MAX_BYTES:
        raise AttachmentRefused(f"附件过大 (file too large): {len(content):,} 字节 > {MAX_BYTES:,}")
    media_type = media_type_of(content)
    if media_type is None:
        raise AttachmentRefused("只接受 PDF、JPEG、PNG、TIFF 文件（按文件内容判断）"
                                "(only PDF, JPEG, PNG and TIFF files are taken, judged by their content)")
    return {"kind": kind, "filename": safe_filename(filename, media_type), "media_type": media_type,
            "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
