# The per-request helper classes of a sub-interpreter (oxwsgi): run once in
# each sub-interpreter by crates/oxwsgi-worker/src/interpreters/shells.rs,
# which embeds this file with include_str!.
class Input:
    """wsgi.input: the request body (oxwsgi, sub-interpreter)."""
    __slots__ = ("_read",)

    def __init__(self, read):
        self._read = read

    def read(self, size=None):
        return self._read(size, False)

    def readline(self, size=None):
        return self._read(size, True)

    def readlines(self, hint=None):
        lines = []
        total = 0
        while True:
            line = self._read(None, True)
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and hint > 0 and total >= hint:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self._read(None, True)
        if not line:
            raise StopIteration
        return line

    def readable(self):
        return True

    def close(self):
        pass


class ErrorsLog:
    """wsgi.errors: lines go to the error log (oxwsgi, sub-interpreter)."""
    __slots__ = ("_emit",)

    def __init__(self, emit):
        self._emit = emit

    def write(self, text):
        return self._emit(text)

    def writelines(self, lines):
        for line in lines:
            self._emit(line)

    def flush(self):
        self._emit(None)

    def writable(self):
        return True

    def readable(self):
        return False

    def isatty(self):
        return False


class FileWrapper:
    """wsgi.file_wrapper (oxwsgi, sub-interpreter)."""
    __slots__ = ("filelike", "blksize")

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = max(int(blksize), 1)

    def __iter__(self):
        return self

    def __next__(self):
        block = self.filelike.read(self.blksize)
        if block:
            return block
        raise StopIteration

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class RequestTimeout(Exception):
    """Raised in a request's thread when it exceeded request-timeout."""
