"""Named saved questions of the Compare page: one JSON file, ``saved_questions.json``, in the folder
``dashboard.saved`` names.

Why a file on the server and not only the link: a link already shares one question (the page's
URL, :mod:`experiments.dashboard.question`); a name is for the few questions a team returns to
("Lishui, vouchers vs free trial, 40 seeds"), which every page of the server should list, and which
should outlast a browser's history. Each entry is a name and the question's query string, so a
saved question opens as its link does, and is judged again as a link is when it is opened.

What the file may hold is bounded, as anyone who reaches the page may save: at most
:data:`MAX_SAVED` names of :data:`NAME_MAX` characters, queries of
:data:`experiments.dashboard.question.QUERY_MAX`, :data:`FILE_MAX` bytes. It is written atomically
(a temporary file in the same folder, then renamed over it), read back checked (a file that is
not such a JSON object, or larger, is refused in one line, never trusted), and the dashboard
touches no file of the folder but its own (and its temporary file); a link in its place is refused.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path

from experiments.dashboard.question import QUERY_MAX
from sim.core.config import ConfigError

FILE_NAME = "saved_questions.json"
DEFAULT_FOLDER = "outputs/saved_questions"  # dashboard.saved's default (outputs/: git ignores it)
MAX_SAVED = 100   # names kept: a team's questions, not a history
NAME_MAX = 60     # characters of a name
FILE_MAX = MAX_SAVED * (NAME_MAX + QUERY_MAX + 16) + 64  # bytes the file may have: the above, full, plus its braces
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.,:()+-]*")
_LOCK = threading.Lock()  # the pages of a server save one at a time


def check_name(name: str) -> str:
    """A saved question's name, stripped, or a one-line ConfigError saying what a name may be."""
    text = str(name).strip()
    if not (0 < len(text) <= NAME_MAX and _NAME.fullmatch(text)):
        shown = repr(text[:NAME_MAX] + ("..." if len(text) > NAME_MAX else ""))
        raise ConfigError(f"name = {shown}: a saved question's name is 1 to {NAME_MAX} letters, digits, spaces "
                          "and _ . , : ( ) + - (a letter or digit first)")
    return text


class SavedQuestions:
    """The saved questions of a folder: {name: query string}, in the order saved (oldest first)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME

    def load(self) -> dict[str, str]:
        """The saved questions ({} if none were saved); a file that is not what :meth:`save` writes raises."""
        if self.path.is_symlink():
            raise ConfigError(f"dashboard.saved: {self.path} is a link; the dashboard reads only the file it writes")
        if not self.path.exists():  # lstat only: opens nothing (a FIFO would block a read)
            return {}
        if not self.path.is_file():
            raise ConfigError(f"dashboard.saved: {self.path} is not a regular file; the dashboard reads only the file "
                              "it writes; move it away")
        size = self.path.stat().st_size
        if size > FILE_MAX:
            raise ConfigError(f"dashboard.saved: {self.path} has {size:,} bytes, more than the {FILE_MAX:,} the "
                              "dashboard writes; move it away")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"dashboard.saved: {self.path} is not the JSON the dashboard writes "
                              f"({type(e).__name__}); move it away") from None
        if not (isinstance(data, dict) and len(data) <= MAX_SAVED and all(
                isinstance(k, str) and k == k.strip() and 0 < len(k) <= NAME_MAX and _NAME.fullmatch(k)
                and isinstance(v, str) and len(v) <= QUERY_MAX for k, v in data.items())):
            raise ConfigError(f"dashboard.saved: {self.path} is not the dashboard's saved questions (a JSON object "
                              f"of at most {MAX_SAVED} names and queries); move it away")
        return data

    def save(self, name: str, query: str) -> dict[str, str]:
        """Save (or replace) ``name``; returns the saved questions. Refused in one line beyond the bounds."""
        name = check_name(name)
        if len(query) > QUERY_MAX:
            raise ConfigError(f"question: {len(query):,} characters, more than the {QUERY_MAX:,} a saved one may have")
        with _LOCK:
            data = self.load()
            if name not in data and len(data) >= MAX_SAVED:
                raise ConfigError(f"name = {name!r}: {MAX_SAVED} questions are saved already, the most kept; delete "
                                  "one first")
            data.pop(name, None)
            data[name] = query
            self._write(data)
        return data

    def delete(self, name: str) -> dict[str, str]:
        with _LOCK:
            data = self.load()
            if data.pop(name, None) is not None:
                self._write(data)
        return data

    def _write(self, data: dict[str, str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".saved_questions.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, ensure_ascii=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)  # atomic: a reader sees the old file or the new, never half of one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
