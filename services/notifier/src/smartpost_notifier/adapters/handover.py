"""The hand-over journal: which mails reached the point of no return (the final dot of DATA).

Recording that point in the database costs a transaction (a millisecond or more) right before the dot; a kill -9
inside that window left a mail marked as handed over that the relay never accepted (lost). An append to a local
file is one write() system call: once it returned, the line survives a process crash (the kernel holds it), and
the window between it and writing the dot shrinks to microseconds. Recovery at start-up reads the journal: a mail
still ``sending`` whose id is in it was handed over (count as sent, unconfirmed); any other goes back to the queue
(the relay discarded the unfinished transaction). One notifier instance owns one journal.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class HandoverJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        # Several sender threads share the journal: the file is opened once; each line is one O_APPEND write().
        self._open_lock = threading.Lock()

    def record(self, mail_id: str) -> None:
        with self._open_lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            fd = self._fd
        line = f"{mail_id}\n".encode()
        if os.write(fd, line) != len(line):
            msg = f"short write to {self.path}"
            raise OSError(msg)

    def handed_over(self) -> set[str]:
        if not self.path.exists():
            return set()
        return {line.strip() for line in self.path.read_text().splitlines() if line.strip()}

    def clear(self) -> None:
        """Forget everything (after recovery has settled every in-flight mail in the database)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def journal_path(database_url: str, data_dir: str) -> Path:
    """Next to the SQLite file (one journal per database), else in the data directory."""
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///") + ".handed-over")
    return Path(data_dir) / "notifier-handed-over.journal"
