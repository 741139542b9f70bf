"""Text encodings of CSV extracts (文件编码): UTF-8, UTF-8 with BOM, GB18030 and GBK.

A 医保局's extract is written by Excel, WPS, HIS exports and database tools, in GBK or GB18030 as often as
in UTF-8. DuckDB reads UTF-8 only (GBK needs an extension that is not available offline), so the ingest
decides each file's encoding here and, when it is not UTF-8, reads a UTF-8 copy made by
:func:`utf8_copy` (streamed, never the whole file in memory).

How :func:`detect_encoding` decides, in the way browsers and chardet/charset-normalizer go about it, kept
small and explainable:

1. A UTF-8 byte-order mark means UTF-8. A UTF-16 or UTF-32 mark is refused (save the file as UTF-8).
2. The bytes are decoded as UTF-8, strictly. When every byte decodes, no character falls in
   U+0080..U+07FF (where GBK text read as UTF-8 lands: ``路`` is C2 B7, which UTF-8 reads as ``·``) and
   none is a character a Chinese extract does not use, the file is UTF-8. This is the usual case and
   costs one pass.
3. Otherwise the file is read both as UTF-8 and as GB18030 (a superset of GBK and GB2312) and each
   reading gets a score: 4 per byte that does not decode, 1 per implausible character (Latin letters
   with diacritics, Cyrillic, kana, Hangul, C1 controls, private use: ``ÖÐÎÄ`` is ``中文`` in GBK read as
   Latin-1), ½ per character outside GB2312 (the 6,763 common hanzi and their symbols: UTF-8 read as GBK
   gives rare ones, ``涓枃``). The lower score wins, UTF-8 on a tie. A GBK file whose bytes happen to be
   valid UTF-8 is therefore read as GBK, unless its every character reads in UTF-8 as one of the few
   symbols and Greek letters a Chinese extract uses (``°C`` is also ``掳C``): then it ties, and UTF-8 wins.
4. The winning reading may leave a few lines with bytes that do not decode (a damaged line): those lines
   are quarantined one by one as ``broken_encoding``. When they are more than half of the lines with
   non-ASCII bytes, the file is in neither encoding and is refused (:class:`EncodingError`, naming the
   file and the byte offset where each reading fails).

NUL bytes have no place in a text extract: lines holding one are quarantined; a file where most lines
hold one (UTF-16 without a mark, a binary file) is refused.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "fixmedins.csv"
>>> _ = path.write_bytes("fixmedins_code,fixmedins_name\\r\\nH001,长春市第一医院\\r\\n".encode("gbk"))
>>> detect_encoding(path).encoding
'gb18030'
>>> _ = path.write_bytes("fixmedins_code,fixmedins_name\\nH001,鲁路\\n".encode("gbk"))  # valid UTF-8 bytes
>>> path.read_bytes().decode("utf-8")[-3:-1], detect_encoding(path).encoding
('³·', 'gb18030')
"""

from __future__ import annotations

import codecs
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["TextEncoding", "EncodingError", "detect_encoding", "utf8_copy", "open_bytes"]

CHUNK_BYTES = 8 << 20  # read in chunks of whole lines of about 8 MiB
SAMPLE_BYTES = 4 << 20  # the readings are scored on this much text with non-ASCII bytes (step 3)

# Characters a Chinese claims extract may well contain besides ASCII: a few Latin-1 symbols (° ± · × ÷ µ
# ² ³), Greek letters (α-干扰素), general punctuation, letterlike and number forms (℃ Ⅱ), enclosed numbers
# (①), box drawing and shapes (○), CJK punctuation, the katakana middle dot (a GBK reading of ·), CJK
# compatibility (㎎), CJK ideographs with their extensions, full-width forms. Surrogates stand for bytes
# that did not decode and are counted apart.
_WIDE = (  # from U+0800 on: where UTF-8 text has 3- and 4-byte sequences
    (0x2000, 0x22FF), (0x2460, 0x25FF), (0x3000, 0x303F), (0x30FB, 0x30FB), (0x3200, 0x9FFF),
    (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFEFF, 0xFEFF), (0xFF00, 0xFFEF), (0x20000, 0x2FA1F),
)
_NARROW = ((0xB0, 0xB3), (0xB5, 0xB5), (0xB7, 0xB7), (0xD7, 0xD7), (0xF7, 0xF7), (0x391, 0x3A9), (0x3B1, 0x3C9))
_SURROGATES = ((0xD800, 0xDFFF),)


def _class(ranges) -> str:
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_IMPLAUSIBLE = re.compile(f"[^\\x00-\\x7f{_class(_NARROW + _WIDE + _SURROGATES)}]")
_WIDE_FROM = np.array([a for a, _ in _WIDE], dtype=np.uint32)
_WIDE_TO = np.array([b for _, b in _WIDE], dtype=np.uint32)
_UNDECODED = re.compile("[\udc80-\udcff]")
_UNDECODED_LINE = re.compile("[\udc80-\udcff][^\n]*")  # one match per line holding an undecoded byte
_NON_ASCII_LINE = re.compile(b"[\x80-\xff][^\n]*")
_BOMS = {codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32", codecs.BOM_UTF16_LE: "UTF-16",
         codecs.BOM_UTF16_BE: "UTF-16"}


class EncodingError(ValueError):
    """A file that cannot be read as text in UTF-8 or GB18030/GBK."""


@dataclass(frozen=True)
class TextEncoding:
    """How to read one CSV file.

    ``encoding`` is ``utf-8``, ``utf-8-sig`` (with a byte-order mark) or ``gb18030`` (also GBK and
    GB2312). ``bad_lines`` lines hold bytes that do not decode in it, the first at ``first_bad`` (byte
    offset); ``nul_lines`` are the (1-based) line numbers holding NUL bytes.
    """

    encoding: str
    bad_lines: int = 0
    first_bad: int | None = None
    nul_lines: tuple[int, ...] = field(default=())

    @property
    def needs_copy(self) -> bool:
        """Whether DuckDB must read a UTF-8 copy (:func:`utf8_copy`) instead of the file itself."""
        return self.encoding == "gb18030" or bool(self.nul_lines)

    @property
    def label(self) -> str:
        """The encoding as people name it: UTF-8, UTF-8 (BOM), GB18030/GBK."""
        return {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)", "gb18030": "GB18030/GBK"}[self.encoding]


def detect_encoding(path: Path) -> TextEncoding:
    """The encoding of the CSV file ``path`` (plain or ``.gz``); :class:`EncodingError` when it is
    neither UTF-8 nor GB18030/GBK, or is mostly NUL bytes. See the module docstring for how."""
    path = Path(path)
    with open_bytes(path) as fh:
        head = fh.read(4)
    for bom, name in _BOMS.items():
        if head.startswith(bom):
            raise EncodingError(f"{path}: 文件为 {name} 编码 (byte-order mark at byte 0)，不支持；"
                                f"请另存为 UTF-8 或 GB18030 (save as UTF-8 or GB18030)")
    utf8 = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    clean, lines, nul_lines = _utf8_pass(path)
    if len(nul_lines) * 2 > max(lines, 1):
        raise EncodingError(f"{path}: {len(nul_lines)} / {lines} 行含 NUL 字节 (0x00)，首个在第 {nul_lines[0]} 行；"
                            f"疑似 UTF-16 或二进制文件，不是文本 CSV (NUL bytes: not a text CSV file)")
    if clean:
        return TextEncoding(utf8, nul_lines=tuple(nul_lines))
    readings = [_Reading(e, "utf-8" if e.startswith("utf-8") else e) for e in (utf8, "gb18030")]
    _score(path, readings)
    best = min(readings, key=lambda r: (r.score, r.encoding != utf8))
    bad_lines, first_bad = _undecodable(path, best.codec)
    if bad_lines and bad_lines * 2 > _non_ascii_lines(path):
        where = "；".join(f"按 {r.codec.upper()} 读，第 {_undecodable(path, r.codec)[1]} 字节起无法解码"
                         if r is best or r.undecoded else f"按 {r.codec.upper()} 读，多为不像中文数据的字符"
                         for r in readings)
        raise EncodingError(
            f"{path}: 文件编码无法识别，既不是 UTF-8 也不是 GB18030/GBK (not UTF-8, GB18030 or GBK): {where} "
            f"(byte offset of the first undecodable byte); 请另存为 UTF-8")
    return TextEncoding(best.encoding, bad_lines, first_bad, tuple(nul_lines))


def utf8_copy(path: Path, encoding: TextEncoding, target: Path) -> None:
    """Write ``path`` (in ``encoding``) to ``target`` as UTF-8, streamed.

    Bytes that do not decode are copied as they are, and NUL bytes become 0xFF: both are invalid UTF-8,
    so DuckDB rejects exactly those lines and the ingest quarantines them (``broken_encoding``).
    """
    with open_bytes(Path(path)) as src, open(target, "wb") as out:
        for _, chunk in _chunks(src):
            if encoding.encoding == "gb18030":
                chunk = chunk.decode("gb18030", "surrogateescape").encode("utf-8", "surrogateescape")
            out.write(chunk.replace(b"\x00", b"\xff"))


def open_bytes(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed when it ends in ``.gz``."""
    return gzip.open(path, "rb") if Path(path).name.endswith(".gz") else open(path, "rb")


# -- private ----------------------------------------------------------------------------------------


@dataclass
class _Reading:
    """One way of reading the file, with what did not fit."""

    encoding: str
    codec: str  # utf-8 for utf-8-sig too: a byte-order mark reads as U+FEFF, and offsets stay exact
    undecoded: int = 0  # bytes that do not decode
    bad_lines: int = 0
    first_bad: int | None = None
    implausible: int = 0
    outside_gb2312: int = 0  # decoded non-ASCII characters GB2312 does not have

    @property
    def score(self) -> float:
        return 4 * self.undecoded + self.implausible + 0.5 * self.outside_gb2312

    def add(self, chunk: bytes, offset: int) -> None:
        text = chunk.decode(self.codec, "surrogateescape")
        undecoded = len(_UNDECODED.findall(text))
        if undecoded:
            if self.first_bad is None:
                first = _UNDECODED.search(text).start()
                self.first_bad = offset + len(text[:first].encode(self.codec, "surrogateescape"))
            self.undecoded += undecoded
            self.bad_lines += len(_UNDECODED_LINE.findall(text))
        self.implausible += len(_IMPLAUSIBLE.findall(text))
        ascii_chars = len(text.encode("ascii", "ignore"))
        gb2312_chars = (len(text.encode("gb2312", "ignore")) - ascii_chars) // 2
        self.outside_gb2312 += len(text) - ascii_chars - undecoded - gb2312_chars


def _utf8_pass(path: Path) -> tuple[bool, int, list[int]]:
    """One pass: whether the file is plainly UTF-8 (step 2), its line count and its lines with NUL."""
    clean, lines, nul_lines = True, 0, []
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with open_bytes(path) as fh:
        for _, chunk in _chunks(fh):
            if b"\x00" in chunk:
                nul_lines += [lines + i + 1 for i, line in enumerate(chunk.split(b"\n")) if b"\x00" in line]
            lines += chunk.count(b"\n") + (not chunk.endswith(b"\n"))
            if not clean or chunk.isascii():
                continue
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                clean = False
                continue
            if not _plain_utf8(chunk):
                clean = False
    return clean, lines, nul_lines


def _plain_utf8(chunk: bytes) -> bool:
    """Whether every non-ASCII character of ``chunk`` (valid UTF-8) is a plausible one from U+0800 on
    (:data:`_WIDE`): the code points are worked out from the lead bytes, in numpy, as a regular
    expression over the text would take several times longer."""
    a = np.frombuffer(chunk, dtype=np.uint8)
    lead = np.flatnonzero(a >= 0xC0)  # in valid UTF-8 every such byte starts a character
    first = a[lead]
    # Lead bytes E4..E9 start U+4000..U+9FFF, all plausible: most of a Chinese text, skipped.
    other = (first < 0xE4) | (first > 0xE9)
    lead, first = lead[other], first[other]
    if not len(lead):
        return True
    if (first < 0xE0).any():  # a 2-byte character: U+0080..U+07FF
        return False
    three, four = lead[first < 0xF0], lead[first >= 0xF0]
    points = [((a[three] & 0x0F).astype(np.uint32) << 12) | ((a[three + 1] & 0x3F).astype(np.uint32) << 6)
              | (a[three + 2] & 0x3F)]
    if len(four):
        points.append(((a[four] & 0x07).astype(np.uint32) << 18) | ((a[four + 1] & 0x3F).astype(np.uint32) << 12)
                      | ((a[four + 2] & 0x3F).astype(np.uint32) << 6) | (a[four + 3] & 0x3F))
    for cp in points:
        i = np.searchsorted(_WIDE_FROM, cp, side="right") - 1
        if ((i < 0) | (cp > _WIDE_TO[np.maximum(i, 0)])).any():
            return False
    return True


def _score(path: Path, readings: list[_Reading], *, sample: int = SAMPLE_BYTES) -> None:
    """Score ``readings`` on the file's first ``sample`` bytes of lines with non-ASCII bytes (step 3)."""
    seen = 0
    with open_bytes(path) as fh:
        for offset, chunk in _chunks(fh, size=min(CHUNK_BYTES, sample)):
            if chunk.isascii():
                continue
            for r in readings:
                r.add(chunk, offset)
            seen += len(chunk)
            if seen >= sample:
                return


def _undecodable(path: Path, codec: str) -> tuple[int, int | None]:
    """Lines of the whole file with bytes that do not decode in ``codec``, and the offset of the first."""
    lines, first = 0, None
    with open_bytes(path) as fh:
        for offset, chunk in _chunks(fh):
            if chunk.isascii():
                continue
            try:
                chunk.decode(codec)
            except UnicodeDecodeError as exc:
                if first is None:
                    first = offset + exc.start
                lines += len(_UNDECODED_LINE.findall(chunk.decode(codec, "surrogateescape")))
    return lines, first


def _non_ascii_lines(path: Path) -> int:
    with open_bytes(path) as fh:
        return sum(len(_NON_ASCII_LINE.findall(chunk)) for _, chunk in _chunks(fh) if not chunk.isascii())


def _chunks(fh: BinaryIO, *, size: int = CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """(byte offset, chunk) of whole lines; a line break is a single byte in UTF-8 and GB18030 alike."""
    offset, rest = 0, b""
    while True:
        block = fh.read(size)
        if not block:
            if rest:
                yield offset, rest
            return
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            continue
        yield offset, block[:cut]
        offset += cut
        rest = block[cut:]
