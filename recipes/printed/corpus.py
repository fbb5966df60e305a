"""Text for synthetic printed lines: prose from text that ships with Debian and Python, cut into lines the way
typesetting cuts them (hyphenation at line ends included), mixed with the short forms documents are full of: dates,
money, numbers, headings, bullets, references, addresses.

`build_corpus()` collects paragraphs once (sorted sources, so the same machine gives the same corpus);
`LineSampler(paragraphs, rng)` draws one line of text at a time from an explicit `random.Random`.
"""

from __future__ import annotations

import ast
import glob
import gzip
import hashlib
import random
import re
import sys
from pathlib import Path

# Characters the reader learns. ASCII first; then what printed Latin-script documents commonly add.
EXTRA = "•–—€£§°©®±×·éèêëàâäçîïôöùûüñßÉÀÇÜÖÄ"
CHARSET = frozenset(chr(c) for c in range(32, 127)) | frozenset(EXTRA)

# Typographic forms printed for the plain ones: the glyph is drawn, the ASCII character is the target (the common
# convention of OCR ground truth, and what users paste into plain text).
TYPOGRAPHIC = {'"': "“”„", "'": "‘’"}


def _clean(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"`{1,2}|\*{1,2}|_{2,}|#{2,}|={3,}|-{3,}|~{3,}|\^{3,}", " ", text)  # markup
    text = re.sub(r"\s+", " ", text).strip()
    return "".join(ch for ch in text if ch in CHARSET)


def _prose_like(text: str) -> bool:
    """Paragraphs that read as sentences, not code or tables."""
    words = text.split()
    if len(words) < 6:
        return False
    alpha = sum(ch.isalpha() for ch in text) / max(len(text), 1)
    codey = sum(text.count(ch) for ch in "{}[]<>=;|\\") / max(len(text), 1)
    return alpha > 0.6 and codey < 0.02


def _paragraphs(raw: str) -> list[str]:
    return [p for p in (_clean(block) for block in re.split(r"\n\s*\n", raw)) if _prose_like(p)]


def _docstrings(path: str) -> list[str]:
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8", errors="ignore"))
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc) > 80:
                out.append(doc)
    return out


def _sources() -> list[tuple[str, str]]:
    """(name, raw text) of every source, in a fixed order."""
    stdlib = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    out: list[tuple[str, str]] = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        out.append((path, Path(path).read_text(encoding="utf-8", errors="ignore")))
    for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:400]:
        out.append((path, Path(path).read_text(encoding="utf-8", errors="ignore")))
    for path in sorted(glob.glob(str(stdlib / "*.py")) + glob.glob(str(stdlib / "*" / "*.py"))):
        if "/test" in path or "idlelib" in path:
            continue
        out.append((path, "\n\n".join(_docstrings(path))))
    for path in sorted(glob.glob("/usr/share/man/man[158]/*.gz"))[:600]:
        try:
            text = gzip.open(path, "rt", encoding="utf-8", errors="ignore").read()
        except OSError:
            continue
        text = re.sub(r"^\.[A-Za-z]+ ?", "", text, flags=re.M)  # troff requests
        text = re.sub(r"\\f[BIRP0-9]|\\-|\\\(..|\\&|\\e", lambda m: "-" if m.group() == "\\-" else "", text)
        out.append((path, text))
    return out


def build_corpus() -> list[str]:
    paragraphs: list[str] = []
    seen: set[str] = set()
    for _name, raw in _sources():
        for p in _paragraphs(raw):
            key = p[:80]
            if key not in seen:
                seen.add(key)
                paragraphs.append(p)
    return paragraphs


def corpus_digest(paragraphs: list[str]) -> str:
    return hashlib.sha256("\n".join(paragraphs).encode()).hexdigest()[:16]


MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
UNITS = [
    "mm",
    "cm",
    "m",
    "km",
    "kg",
    "g",
    "mg",
    "ml",
    "l",
    "s",
    "ms",
    "Hz",
    "kHz",
    "MHz",
    "V",
    "mA",
    "W",
    "kW",
    "%",
    "dB",
    "K",
    "°C",
    "°F",
    "in.",
    "ft",
    "lb",
    "oz",
    "MB",
    "GB",
]
BULLETS = ["•", "-", "*", "·", "–", "o"]
STREETS = ["Main St.", "Oak Avenue", "Park Road", "High Street", "Elm Dr.", "Lake Blvd.", "Church Lane", "5th Ave."]


class LineSampler:
    """Draws one line of text at a time: mostly prose cut as typesetting cuts it, some document short forms."""

    def __init__(self, paragraphs: list[str], rng: random.Random):
        self.paragraphs = paragraphs
        self.rng = rng
        self.words = [w for p in paragraphs[:: max(1, len(paragraphs) // 3000)] for w in p.split()]

    def line(self, max_chars: int = 130) -> str:
        r = self.rng.random()
        if r < 0.70:
            text = self.prose(max_chars)
        elif r < 0.80:
            text = self.short()
        else:
            text = self.form(max_chars)
        text = self.case(text)
        return text[:max_chars].strip() or "0"

    def length(self, max_chars: int) -> int:
        """Line lengths as pages have them: mostly a column's width, some short last lines and headings."""
        r = self.rng.random()
        if r < 0.12:
            return self.rng.randint(1, 12)
        if r < 0.30:
            return self.rng.randint(12, 35)
        return self.rng.randint(35, max_chars)

    def prose(self, max_chars: int) -> str:
        words = self.rng.choice(self.paragraphs).split()
        start = self.rng.randrange(len(words))
        target = self.length(max_chars)
        out: list[str] = []
        if self.rng.random() < 0.08 and len(words[start]) > 5:  # the tail of a word hyphenated on the line before
            out.append(words[start][self.rng.randint(2, len(words[start]) - 3) :])
            start += 1
        size = len(out[0]) if out else 0
        for word in words[start:] + words[:start]:
            if size + len(word) + 1 > target:
                if self.rng.random() < 0.25 and len(word) >= 6 and word.isalpha():  # hyphenate at the line end
                    cut = self.rng.randint(2, len(word) - 3)
                    if size + cut + 2 <= max_chars:
                        out.append(word[:cut] + "-")
                break
            out.append(word)
            size += len(word) + 1
        return " ".join(out) if out else words[start][:target]

    def case(self, text: str) -> str:
        r = self.rng.random()
        if r < 0.03:
            return text.upper()
        if r < 0.06:
            return text.title()
        return text

    def number(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.3:
            return str(rng.randint(0, 99))
        if kind < 0.5:
            return f"{rng.randint(0, 99999):,}"
        if kind < 0.7:
            return f"{rng.uniform(0, 1000):.{rng.randint(1, 3)}f}"
        if kind < 0.8:
            return f"-{rng.uniform(0, 100):.{rng.randint(1, 2)}f}"
        return str(rng.randint(1000, 2030))

    def date(self) -> str:
        rng = self.rng
        d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1950, 2030)
        return rng.choice(
            [
                f"{MONTHS[m - 1]} {d}, {y}",
                f"{d} {MONTHS[m - 1]} {y}",
                f"{m:02d}/{d:02d}/{y}",
                f"{y}-{m:02d}-{d:02d}",
                f"{d}.{m}.{y}",
                f"{MONTHS[m - 1][:3]}. {d}, {y}",
            ]
        )

    def money(self) -> str:
        rng = self.rng
        amount = rng.choice(
            [
                f"{rng.randint(0, 999)}.{rng.randint(0, 99):02d}",
                f"{rng.randint(1000, 999999):,}",
                f"{rng.randint(1, 99)}",
                f"{rng.randint(1000, 99999):,}.{rng.randint(0, 99):02d}",
            ]
        )
        return rng.choice([f"${amount}", f"€{amount}", f"£{amount}", f"{amount} USD", f"EUR {amount}", f"${amount}"])

    def short(self) -> str:
        """One word, one number, a date or an amount alone: what forms and tables hold."""
        rng = self.rng
        return rng.choice(
            [
                lambda: rng.choice(self.words).strip(".,;:()\"'") or "a",
                self.number,
                self.date,
                self.money,
                lambda: str(rng.randint(0, 9)),
                lambda: f"{self.number()} {rng.choice(UNITS)}",
                lambda: f"{rng.randint(1, 20)}.{rng.randint(1, 9)}",
                lambda: f"Page {rng.randint(1, 400)}",
            ]
        )()

    def form(self, max_chars: int) -> str:
        """A line built from the short forms: bullets, headings, tables, references, addresses."""
        rng = self.rng
        kind = rng.randrange(8)
        if kind == 0:
            return f"{rng.choice(BULLETS)} {self.prose(min(max_chars, 70))}"
        if kind == 1:
            num = ".".join(str(rng.randint(1, 12)) for _ in range(rng.randint(1, 3)))
            return f"{num} {self.prose(40).title()}"
        if kind == 2:
            cells = [
                rng.choice([self.number, self.money, self.date, lambda: rng.choice(self.words)])()
                for _ in range(rng.randint(2, 6))
            ]
            return (" " * rng.randint(1, 4)).join(cells)
        if kind == 3:
            return (
                f"{self.prose(60)} [{rng.randint(1, 60)}]"
                if rng.random() < 0.5
                else f"({rng.choice(['see', 'cf.', 'Fig.', 'Table', 'Eq.'])} {rng.randint(1, 30)}) {self.prose(50)}"
            )
        if kind == 4:
            return f"{rng.randint(1, 9999)} {rng.choice(STREETS)}, Suite {rng.randint(1, 999)}"
        if kind == 5:
            return f"Tel. ({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        if kind == 6:
            words = [rng.choice(self.words).lower().strip(".,;:()\"'") or "x" for _ in range(2)]
            return rng.choice(
                [f"{words[0]}@{words[1]}.com", f"https://www.{words[0]}.org/{words[1]}", f"{words[0]}_{words[1]}.txt"]
            )
        return f"{self.prose(50)} {self.money()} on {self.date()}"
