"""The app's side of the llama.cpp worker process (``llama_worker``): start, ask, notice death.

Requests are JSON lines on the worker's stdin; a reader thread routes each reply line to
the request whose ``id`` it carries, so a token count can be answered while an answer is
streaming. When the worker dies (a native crash, a kill, running out of memory), every
waiting request gets ``WorkerDied`` with one line saying how it ended.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from phichat.errors import PhichatError

_DIED: dict[str, Any] = {"died": True}  # put in every waiting queue when the worker ends


class WorkerDied(PhichatError):
    """The llama.cpp worker process ended while phichat was talking to it."""


class Reply:
    """The replies to one request, in order."""

    def __init__(self, process: LlamaProcess, ident: int) -> None:
        self._process = process
        self.ident = ident
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next reply, or None when ``timeout`` passes first; raises ``WorkerDied``."""
        try:
            reply = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if reply is _DIED:
            raise WorkerDied(self._process.exit_reason())
        return reply

    def close(self) -> None:
        """No more replies are wanted (their lines are dropped as they arrive)."""
        self._process.forget(self.ident)


class LlamaProcess:
    def __init__(self) -> None:
        env = dict(os.environ)
        # The worker imports phichat: make sure it finds this copy, however we were started.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "phichat.models.llama_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
            # Its own session: Ctrl+C and job control in the terminal never reach it.
            start_new_session=True,
        )
        assert self._popen.stdin and self._popen.stdout and self._popen.stderr
        self._stdin: IO[str] = self._popen.stdin
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards _waiting, _dead and writes to stdin
        self._waiting: dict[int, Reply] = {}
        self._dead = False
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=5)
        threading.Thread(
            target=self._route, args=(self._popen.stdout,), name="llama-replies", daemon=True
        ).start()
        threading.Thread(
            target=self._keep_stderr, args=(self._popen.stderr,), name="llama-log", daemon=True
        ).start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def peak_memory_bytes(self) -> int | None:
        """The worker's peak resident memory so far (Linux's VmHWM), or None where unknown."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None

    @property
    def alive(self) -> bool:
        return not self._dead and self._popen.poll() is None

    # ---- requests --------------------------------------------------------------------
    def start(self, op: str, **fields: Any) -> Reply:
        """Send a request; its replies arrive on the returned ``Reply``."""
        with self._lock:
            reply = Reply(self, next(self._ids))
            if self._dead:
                reply.queue.put(_DIED)
                return reply
            self._waiting[reply.ident] = reply
            self._write({"op": op, "id": reply.ident, **fields})
        return reply

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request, one reply."""
        reply = self.start(op, **fields)
        try:
            answer = reply.next()
            assert answer is not None
            return answer
        finally:
            reply.close()

    def stop(self, ident: int) -> None:
        """Ask the worker to end generation ``ident`` after its current token."""
        with self._lock:
            if not self._dead:
                self._write({"op": "stop", "target": ident})

    def forget(self, ident: int) -> None:
        with self._lock:
            self._waiting.pop(ident, None)

    def _write(self, message: dict[str, Any]) -> None:
        try:
            self._stdin.write(json.dumps(message) + "\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it has died; the reader thread tells every waiting request

    # ---- the worker's output ---------------------------------------------------------
    def _route(self, stdout: IO[str]) -> None:
        try:
            for line in stdout:
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                with self._lock:
                    reply = self._waiting.get(int(message.get("id", -1)))
                if reply is not None:
                    reply.queue.put(message)
        except (OSError, ValueError):
            pass
        with self._lock:
            self._dead = True
            waiting, self._waiting = list(self._waiting.values()), {}
        for reply in waiting:
            reply.queue.put(_DIED)

    def _keep_stderr(self, stderr: IO[str]) -> None:
        try:
            for line in stderr:
                if line.strip():
                    self._stderr_tail.append(line.strip())
        except (OSError, ValueError):
            pass

    def exit_reason(self) -> str:
        """One line: how the worker ended, e.g. "llama.cpp crashed (SIGSEGV)"."""
        try:
            code = self._popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "llama.cpp stopped answering"
        return describe_exit(code, self._stderr_tail[-1] if self._stderr_tail else "")

    def close(self, timeout: float = 2.0) -> None:
        """End the worker: close its input (it leaves), then kill it if it lingers."""
        with self._lock:
            self._dead = True
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()
        try:
            self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


def describe_exit(code: int, last_error: str = "") -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGKILL":
            return "llama.cpp was killed (SIGKILL; out of memory?)"
        return f"llama.cpp crashed ({name})"
    detail = f": {last_error}" if last_error else ""
    return f"llama.cpp's worker exited with status {code}{detail}"
