#!/usr/bin/env python3
"""Regenerate the byte tables of landdb-text.

Run from this folder: `python3 generate.py`. Needs glibc's iconv (Debian 12: GLIBC 2.36).

* tcvn3.tsv, cp1258.tsv, windows1252.tsv: every byte 0x00-0xFF is fed alone to
  `iconv -f <charset> -t UTF-8`; a byte iconv rejects is left out of the table.
* vni.tsv: VNI-Windows has no iconv charset. It is built below from the VNI rule (a base
  letter followed by a diacritic byte, plus single bytes for ơ ư đ and the toned i's and ỵ)
  and was checked against public VNI converters (xvnkb's vni.h, and others).
"""
import subprocess
import unicodedata

TONES = ["", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"]  # none, grave, acute, hook, tilde, dot


def iconv_byte(charset, b):
    r = subprocess.run(["iconv", "-f", charset, "-t", "UTF-8"], input=bytes([b]), capture_output=True)
    return r.stdout.decode("utf-8") if r.returncode == 0 else None


def display(ch):
    # The third column is for people; leave it empty where the character would not show.
    cat = unicodedata.category(ch)
    return "" if cat[0] in "CZM" else ch


def row(bs, ch):
    assert all(0 <= b <= 0xFF for b in bs), (bs, ch)
    return "{}\tU+{:04X}\t{}".format(" ".join("{:02X}".format(b) for b in bs), ord(ch), display(ch)).rstrip("\t")


def iconv_table(charset, path, header):
    lines = list(header)
    for b in range(256):
        s = iconv_byte(charset, b)
        if s is None:
            lines.append("# {:02X} not defined by iconv".format(b))
            continue
        s = unicodedata.normalize("NFC", s)
        assert len(s) == 1, (charset, b, s)
        lines.append(row([b], s))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


COMMON = [
    "# Columns: byte(s) in hex <TAB> Unicode code point <TAB> the character (empty for marks, spaces, controls).",
]

iconv_table("TCVN5712-1", "tcvn3.tsv", [
    "# TCVN3 (TCVN 5712:1993, the 'ABC' font encoding) -> Unicode.",
    "# Source: glibc iconv charset TCVN5712-1 (Debian GLIBC 2.36), every byte 0x00-0xFF decoded alone,",
    "# NFC-normalised (each byte gave one character already). Regenerate with generate.py.",
    "# glibc implements the full VN1 variant: upper-case toned letters sit at 0x01-0x17 (in place of",
    "# some C0 controls), 0x80-0x9F and some of 0xAF-0xFF; 0xB0-0xB4 are combining tone marks that",
    "# compose with the letter before them. The ABC fonts in everyday use (VN3) lack most upper-case",
    "# toned letters: users typed them in the '.VnTimeH' capitals font, so such text is stored with the",
    "# lower-case bytes and decodes as lower case. Every VN3 byte means the same here.",
] + COMMON)

iconv_table("CP1258", "cp1258.tsv", [
    "# Windows-1258 (Vietnamese) -> Unicode.",
    "# Source: glibc iconv charset CP1258 (Debian GLIBC 2.36), every byte 0x00-0xFF decoded alone.",
    "# 0xCC 0xEC 0xD2 0xDE 0xF2 are combining tone marks written after the base letter. Regenerate",
    "# with generate.py.",
] + COMMON)

iconv_table("CP1252", "windows1252.tsv", [
    "# Windows-1252 -> Unicode: the byte meanings of VNI-Windows text outside the Vietnamese letters",
    "# (vni.tsv overrides the bytes it uses).",
    "# Source: glibc iconv charset CP1252 (Debian GLIBC 2.36), every byte 0x00-0xFF decoded alone.",
    "# Regenerate with generate.py.",
] + COMMON)

# VNI-Windows. Diacritic bytes (lower case; the upper-case byte is 0x20 lower, as in Windows-1252).
VNI_TONE = {"\u0300": 0xF8, "\u0301": 0xF9, "\u0309": 0xFB, "\u0303": 0xF5, "\u0323": 0xEF}  # ø ù û õ ï
VNI_CIRCUMFLEX = {"": 0xE2, "\u0300": 0xE0, "\u0301": 0xE1, "\u0309": 0xE5, "\u0303": 0xE3, "\u0323": 0xE4}  # â à á å ã ä
VNI_BREVE = {"": 0xEA, "\u0300": 0xE8, "\u0301": 0xE9, "\u0309": 0xFA, "\u0303": 0xFC, "\u0323": 0xEB}  # ê è é ú ü ë
VNI_I = {"\u0300": 0xEC, "\u0301": 0xED, "\u0309": 0xE6, "\u0303": 0xF3, "\u0323": 0xF2}  # ì í æ ó ò
VNI_SINGLE_BASE = {"ơ": 0xF4, "ư": 0xF6}  # ô ö


def vni_bytes(letter):
    """VNI bytes of one lower-case Vietnamese letter."""
    if letter == "đ":
        return [0xF1]  # ñ
    # NFD puts the dot below before the circumflex/breve/horn, so take the tone mark out by name.
    d = unicodedata.normalize("NFD", letter)
    tones = [m for m in d if m in VNI_TONE]
    tone = tones[0] if tones else ""
    base = unicodedata.normalize("NFC", "".join(m for m in d if m not in VNI_TONE))
    if base == "i":
        return [ord("i")] if not tone else [VNI_I[tone]]
    if base == "y" and tone == "\u0323":
        return [0xEE]  # î = ỵ
    if base in "âêô":
        return [ord(unicodedata.normalize("NFD", base)[0]), VNI_CIRCUMFLEX[tone]]
    if base == "ă":
        return [ord("a"), VNI_BREVE[tone]]
    first = VNI_SINGLE_BASE.get(base, ord(base))
    return [first] + ([VNI_TONE[tone]] if tone else [])


def upper_byte(b):
    return b - 0x20 if b >= 0xE0 else ord(chr(b).upper())


letters = [unicodedata.normalize("NFC", v + t) for v in "aăâeêioôơuưy" for t in TONES] + ["đ"]
vni = [
    "# VNI-Windows -> Unicode: the 134 precomposed Vietnamese letters (67 lower, 67 upper case).",
    "# VNI text is a Windows-1252 byte stream in which a Vietnamese letter is a base letter followed by a",
    "# diacritic byte ('a' F8 = à, 'o' E1 = ố, F4 'ù' = ớ), except ơ ư đ, the toned i's and ỵ, which are",
    "# single bytes. Upper-case letters use the upper-case diacritic bytes (0x20 lower). Other bytes keep",
    "# their Windows-1252 meaning (windows1252.tsv). Decoding takes two-byte entries first.",
    "# Source: the VNI-Windows font standard (VNI Software), generated by generate.py from that rule and",
    "# checked entry by entry against public VNI converter tables (e.g. xvnkb's vni.h).",
] + COMMON
for upper in (False, True):
    for letter in letters:
        if letter.isascii():
            continue
        bs = vni_bytes(letter)
        ch = letter
        if upper:
            bs = [upper_byte(b) for b in bs]
            ch = letter.upper()
        vni.append(row(bs, ch))
with open("vni.tsv", "w", encoding="utf-8") as f:
    f.write("\n".join(vni) + "\n")
