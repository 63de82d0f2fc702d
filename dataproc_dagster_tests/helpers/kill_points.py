"""In-process crashes at the loader's named instants (``kill_point_for_tests``).

:class:`Killed` stands for SIGKILL: it is not an ``Exception``, so the loader's error handling
does not run, as in a process that dies (the crash tests of test_load_kills.py SIGKILL real
processes instead).
"""

from __future__ import annotations

import pytest

from dataproc_dagster.loading import publish, writer


class Killed(BaseException):
    """Raised at the armed kill point; nothing of the loader catches it."""


def kill_at(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    """Raise :class:`Killed` when the writer or the publisher reaches ``point``."""

    def kill_point(name: str) -> None:
        if name == point:
            raise Killed(name)

    monkeypatch.setattr(writer, "kill_point_for_tests", kill_point)
    monkeypatch.setattr(publish, "kill_point_for_tests", kill_point)
