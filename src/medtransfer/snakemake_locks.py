"""Two Snakemake runs in one folder keep each other's locks.

Since 9.17 (checked through 9.27.1, the newest release) Snakemake's file persistence removes
the whole `.snakemake/locks` folder when any run ends, its own lock files and every other
run's: a run on one target ending beside a run on another left the second unprotected, and
a third run then trained the same network twice at once. Every release since has it, so no
version bound avoids it; the workflow restores the behaviour of 9.16 and earlier instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil


def keep_other_runs_locks() -> bool:
    """A run ending removes its own lock files only; `snakemake --unlock` still clears all.

    Returns whether this Snakemake needed the change (its file persistence removes them all).
    """
    try:
        from snakemake.persistence.file import FilePersistence
    except ImportError:  # 9.16 and earlier: the persistence removed only its own locks
        return False

    def delete_own_locks(self) -> None:
        for lockfile in self._lockfile.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(lockfile)
        self._lockfile.clear()

    def delete_every_lock(self) -> None:  # --unlock: the user says no other run is alive
        self._lockfile.clear()
        shutil.rmtree(self._lockdir, ignore_errors=True)
        os.makedirs(self._lockdir, exist_ok=True)

    FilePersistence._delete_locks = delete_own_locks
    FilePersistence.cleanup_locks = delete_every_lock
    return True
