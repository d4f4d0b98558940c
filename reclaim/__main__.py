import io
import os
import sys
from typing import TextIO

from reclaim.cli import main


class _PipeSafe(io.TextIOBase):
    """A terminal stream that outlives a closed pipe (`python -m reclaim run | head -1`): the
    reader is gone, so later output is dropped, but the work in hand (a claimed removal) is
    finished and stored. The default SIGPIPE would kill the process mid-removal instead."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._closed_pipe = False

    def write(self, text: str) -> int:
        if not self._closed_pipe:
            try:
                self._stream.write(text)
                self._stream.flush()
            except BrokenPipeError:
                self._closed_pipe = True
                # Python flushes the real stream again at exit: point it at nowhere.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
        return len(text)

    def flush(self) -> None:
        if not self._closed_pipe:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._closed_pipe = True


sys.exit(main(out=_PipeSafe(sys.stdout), err=_PipeSafe(sys.stderr)))  # type: ignore[arg-type]
