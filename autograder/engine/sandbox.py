"""How a probe worker process is started: the bubblewrap sandbox, the unprivileged uid, the rlimits.

Three modes:

- ``bwrap``: the student's worker. bubblewrap with every namespace unshared (no network, own pid/ipc/uts/user
  namespaces, no nested user namespaces), a read-only view of the system and of the Python environment only, a
  size-capped tmpfs as its working directory with the worker's files bound read-only into it, and the rlimits of
  `SandboxLimits`. When the grader runs as root, the worker runs as an unprivileged uid unique to this grading run
  (RLIMIT_NPROC never binds root, and a shared uid would let one sandbox's fork bomb starve another's).
- ``insecure``: no bubblewrap available and the instructor said `--insecure-no-sandbox`. A plain subprocess in a
  fresh copy of the files, same rlimits, same uid drop when root. Every result is stamped with this mode.
- ``trusted``: the reference solution. A plain subprocess with the same worker code, so that graders compare like
  with like; nothing is limited because nothing untrusted runs there.

Paths an unprivileged uid cannot reach (this venv's interpreter under /root/.pyenv, for instance) are first bound
to a reachable mount point inside a private mount namespace of the launcher (`unshare --mount`), never by
changing permissions on the host.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.assignment import SandboxLimits

MODES = ("bwrap", "insecure", "trusted")
WORKDIR = "/sandbox"  # the worker's cwd inside bubblewrap
WORKER_FILE = "_autograder_worker.py"
WIRE_FILE = "_autograder_wire.py"
UID_BASE = 3_000_000  # plus the harness pid: unique among live grading runs, never a real account
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives",
              "/etc/nsswitch.conf", "/etc/mime.types")


class SandboxUnavailable(Exception):
    """bubblewrap is missing or cannot create its namespaces here."""


@dataclass(frozen=True)
class WorkerSpec:
    files_dir: Path  # pristine directory: worker, wire, probes, assignment files, omniglot_data
    probes: str
    mode: str
    device: str  # "cpu", "cuda" or "cuda:N"
    limits: SandboxLimits
    scratch_dir: Path  # per-run folder for the worker's copies and mount points, reachable by the sandbox uid
    data_dir: Path | None = None
    preload: tuple[str, ...] = ()  # modules imported before any request (never from the worker folder)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown worker mode {self.mode!r}; expected one of {MODES}")


def sandbox_uid() -> int | None:
    """The uid workers of this process run as, or None when we are not root (then our own uid is unprivileged)."""
    return UID_BASE + os.getpid() if os.geteuid() == 0 else None


def cuda_index(device: str) -> str | None:
    if device == "cpu":
        return None
    if device == "cuda":
        return "0"
    if device.startswith("cuda:") and device[5:].isdigit():
        return device[5:]
    raise ValueError(f"unknown device {device!r}; expected cpu, cuda or cuda:N")


def worker_device(device: str) -> str:
    """The device name code inside the worker uses: it sees one GPU at most, always as cuda:0."""
    return "cpu" if cuda_index(device) is None else "cuda"


def worker_env(spec: WorkerSpec, home: str) -> dict[str, str]:
    index = cuda_index(spec.device)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "USER": "student",  # getpass and torch look the user up; the insecure mode's uid has no passwd entry
        "LOGNAME": "student",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp",
        "OMP_NUM_THREADS": str(spec.limits.threads),
        "MKL_NUM_THREADS": str(spec.limits.threads),
        "CUDA_VISIBLE_DEVICES": "" if index is None else index,
    }
    if spec.data_dir is not None:
        env["OMNIGLOT_DATA_DIR"] = str(spec.data_dir)
    return env


def _rlimits(spec: WorkerSpec) -> list[str]:
    limits = spec.limits
    args = [
        f"--nproc={limits.max_processes}",
        f"--fsize={limits.max_file_mb * 1024 * 1024}",
        "--core=0",
        "--msgqueue=0",  # POSIX message queues outlive their process in the sandbox's ipc namespace: none at all
    ]
    if cuda_index(spec.device) is None:
        args.append(f"--as={limits.memory_mb * 1024 * 1024}")
    return ["prlimit", *args, "--"]


def _drop_uid(uid: int | None) -> list[str]:
    if uid is None:
        return []
    # --pdeathsig (applied after the uid change, which would clear it): if the harness dies while bwrap is still
    # setting up, before bwrap's own --die-with-parent takes effect, the sandbox still goes with it
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--pdeathsig", "KILL",
            "--"]


def reachable_by_others(path: Path, read: bool = True) -> bool:
    """Whether a uid that is neither owner nor in the group can reach `path` (and, with `read`, read it)."""
    for ancestor in reversed(path.parents):
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    need = (stat.S_IROTH if read else 0) | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def _python_paths() -> list[Path]:
    """What the interpreter needs: the base installation and, when different, the virtual environment."""
    paths = [Path(sys.base_prefix).resolve()]
    prefix = Path(sys.prefix)
    if prefix.resolve() != paths[0]:
        paths.append(prefix)
    executable_home = Path(sys.executable).resolve().parent.parent
    if not any(executable_home == p or p in executable_home.parents for p in paths):
        paths.append(executable_home)
    return paths


class _Stager:
    """Prepares mounts in the launcher's private mount namespace (as root, before the uid drop): binds paths the
    sandbox uid cannot reach onto mount points it can, and creates the sandbox's writable tmpfs with a size and an
    inode cap (bubblewrap's own `--tmpfs` takes a size only)."""

    def __init__(self, scratch_dir: Path, uid: int | None):
        self.scratch_dir = scratch_dir
        self.uid = uid
        self.steps: list[str] = []

    def _stage(self) -> Path:
        stage = self.scratch_dir / "mnt" / str(len(self.steps))
        stage.mkdir(parents=True, exist_ok=True)
        return stage

    def source_for(self, path: Path) -> Path:
        if self.uid is None or reachable_by_others(path):
            return path
        stage = self._stage()
        self.steps.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(stage))}")
        return stage

    def capped_tmpfs(self, size_bytes: int, inodes: int) -> Path | None:
        """A fresh tmpfs of at most `size_bytes` and `inodes` files, owned by the sandbox uid (None without root:
        then only bubblewrap's size-capped tmpfs is available)."""
        if self.uid is None:
            return None
        stage = self._stage()
        options = f"size={size_bytes},nr_inodes={inodes},mode=0755,uid={self.uid},gid={self.uid}"
        self.steps.append(f"mount -t tmpfs -o {options} tmpfs {shlex.quote(str(stage))}")
        return stage

    def wrap(self, command: list[str]) -> list[str]:
        if not self.steps:
            return command
        script = " && ".join(self.steps)
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", f'{script} && exec "$@"', "sh",
                *command]


def inode_caps_available() -> bool:
    """Whether the writable folders of a sandbox get an inode cap here (the launcher must be root to mount them)."""
    return sandbox_uid() is not None


def _bwrap_command(spec: WorkerSpec, uid: int | None, worker_args: list[str], as_pid_1: bool = False) -> list[str]:
    stager = _Stager(spec.scratch_dir, uid)
    args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--hostname", "sandbox", "--cap-drop", "ALL"]
    if as_pid_1:  # the fork server is the sandbox's init: no bwrap init beside it that a worker could trace
        args.append("--as-pid-1")
    if uid is not None:
        args += ["--uid", str(uid), "--gid", str(uid)]
    for directory in _SYSTEM_DIRS:
        path = Path(directory)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), directory]
        elif path.is_dir():
            args += ["--ro-bind", str(stager.source_for(path)), directory]
    for entry in _ETC_FILES:
        if os.path.exists(entry):
            args += ["--ro-bind", entry, entry]
    identity = _identity_files(spec.scratch_dir, uid)
    args += ["--ro-bind", str(identity / "passwd"), "/etc/passwd", "--ro-bind", str(identity / "group"), "/etc/group"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    size = spec.limits.tmpfs_mb * 1024 * 1024
    # bwrap's /dev/shm is part of its uncapped /dev tmpfs: a capped one of its own (shared memory of DataLoader
    # workers lives there), and /dev itself read-only below. Each writable folder is capped in bytes and, where the
    # launcher can mount (root), in files: empty files cost kernel memory that no byte cap counts.
    for folder in ("/dev/shm", "/tmp", WORKDIR):
        capped = stager.capped_tmpfs(size, spec.limits.max_files)
        args += ["--bind", str(capped), folder] if capped is not None else ["--size", str(size), "--tmpfs", folder]
    for path in _python_paths():
        args += ["--ro-bind", str(stager.source_for(path)), str(path)]
    if spec.data_dir is not None and spec.data_dir.is_dir():
        args += ["--ro-bind", str(stager.source_for(spec.data_dir)), str(spec.data_dir)]
    for entry in sorted(os.listdir(spec.files_dir)):
        args += ["--ro-bind", str(stager.source_for(spec.files_dir / entry)), f"{WORKDIR}/{entry}"]
    if cuda_index(spec.device) is not None:
        for node in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(node), str(node)]
        args += ["--ro-bind-try", "/sys", "/sys"]
    # bwrap's root and /dev are unlimited tmpfs: read-only, so that only the size-capped /tmp, /dev/shm and workdir
    # are writable (device nodes such as /dev/null stay writable: a read-only mount does not stop device I/O).
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in worker_env(spec, home=WORKDIR).items():
        args += ["--setenv", key, value]
    args += ["--", sys.executable, *worker_args]
    return stager.wrap(_rlimits(spec) + _drop_uid(uid) + args)


def _identity_files(scratch_dir: Path, uid: int | None) -> Path:
    """A passwd/group naming the worker's uid, so code that looks itself up (getpass, torch) finds an entry.
    Written where the worker is launched (the harness), since the uid depends on the launching process."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if uid == os.getuid() else uid
    identity = scratch_dir / "etc" / str(uid)
    if not (identity / "group").exists():
        identity.mkdir(parents=True, exist_ok=True)
        os.chmod(scratch_dir / "etc", 0o755)
        (identity / "passwd").write_text(f"student:x:{uid}:{gid}:student:{WORKDIR}:/usr/sbin/nologin\n")
        (identity / "group").write_text(f"student:x:{gid}:\n")
        for path in (identity, identity / "passwd", identity / "group"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    return identity


def prepare_workdir(spec: WorkerSpec, uid: int | None) -> Path | None:
    """For modes without bubblewrap: a fresh copy of the files, so no run can change what the next one sees."""
    if spec.mode == "bwrap":
        return None
    # The reference's copies stay next to its files (in the harness's private folder), the student's in scratch.
    parent = spec.files_dir.parent / "runs" if spec.mode == "trusted" else spec.scratch_dir / "run"
    workdir = Path(_unique_dir(parent))
    shutil.copytree(spec.files_dir, workdir, dirs_exist_ok=True)
    if uid is not None and spec.mode == "insecure":
        for root, dirs, files in os.walk(workdir):
            for name in [*dirs, *files, "."]:
                os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)
    return workdir


def _unique_dir(parent: Path) -> str:
    import tempfile

    parent.mkdir(parents=True, exist_ok=True)
    os.chmod(parent, 0o711)
    return tempfile.mkdtemp(dir=parent)


def _worker_args(spec: WorkerSpec, *mode_args: str) -> list[str]:
    # -I: ignore PYTHON* variables, user site and the script's folder; -B: write no bytecode; -u: unbuffered, so
    # output printed before a hang or crash is not lost with the process.
    preload = ["--preload", ",".join(spec.preload)] if spec.preload else []
    return ["-I", "-B", "-u", WORKER_FILE, "--probes", spec.probes, *mode_args, *preload]


def fork_server_command(spec: WorkerSpec, control_fd: int) -> tuple[list[str], dict, str]:
    """The command line, environment and cwd of a sandbox whose first process is a fork server (bwrap only: it
    kills every other process it can and empties /tmp, which only a sandbox of its own makes safe)."""
    if spec.mode != "bwrap":
        raise ValueError(f"a fork server needs the bwrap mode, not {spec.mode!r}")
    worker_args = _worker_args(spec, "--fork-server", str(control_fd))
    launcher_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return _bwrap_command(spec, sandbox_uid(), worker_args, as_pid_1=True), launcher_env, "/"


def worker_command(spec: WorkerSpec, requests_fd: int, replies_fd: int,
                   workdir: Path | None) -> tuple[list[str], dict, str]:
    """The command line, environment and cwd of one worker."""
    worker_args = _worker_args(spec, "--requests", str(requests_fd), "--replies", str(replies_fd))
    if spec.mode == "trusted":  # the reference's failures are grader errors: the instructor needs every frame
        worker_args.append("--full-tracebacks")
    if spec.mode == "bwrap":
        launcher_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # bwrap --clearenv sets the worker's
        return _bwrap_command(spec, sandbox_uid(), worker_args), launcher_env, "/"
    command = [sys.executable, *worker_args]
    if spec.mode == "insecure":
        uid = sandbox_uid()
        command = _expose_in_place(_python_paths(), spec.scratch_dir, uid, _rlimits(spec) + _drop_uid(uid) + command)
    return command, worker_env(spec, home=str(workdir)), str(workdir)


def _blocked_ancestor(path: Path) -> Path | None:
    for ancestor in reversed(path.parents):
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def _expose_in_place(paths: list[Path], scratch_dir: Path, uid: int | None, command: list[str]) -> list[str]:
    """Without bubblewrap, make `paths` reachable by the worker uid at their own location: in a private mount
    namespace, a tmpfs hides each unreachable ancestor (e.g. root's home) and the paths are bound back into it."""
    if uid is None:
        return command
    steps = []
    covered: set[Path] = set()
    for index, path in enumerate(paths):
        if reachable_by_others(path):
            continue
        ancestor = _blocked_ancestor(path)
        if ancestor is None:
            raise SandboxUnavailable(f"{path} is not readable by an unprivileged user; the worker cannot run it")
        stage = scratch_dir / "mnt" / f"insecure{index}"
        stage.mkdir(parents=True, exist_ok=True)
        q = shlex.quote
        steps.append(f"mount --bind {q(str(path))} {q(str(stage))}")
        if ancestor not in covered:
            covered.add(ancestor)
            steps.append(f"mount -t tmpfs -o mode=0755,size=1m tmpfs {q(str(ancestor))}")
        steps.append(f"mkdir -p {q(str(path))} && mount --bind {q(str(stage))} {q(str(path))}")
    if not steps:
        return command
    # the binds must happen before any tmpfs hides their source, so all binds to the stages go first
    binds = [step for step in steps if step.startswith("mount --bind")]
    rest = [step for step in steps if not step.startswith("mount --bind")]
    script = " && ".join(binds + rest)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", f'{script} && exec "$@"', "sh",
            *command]


def check_bwrap(scratch_dir: Path) -> None:
    """Start a do-nothing sandbox the way workers are started; raise SandboxUnavailable with bwrap's words if not."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    uid = sandbox_uid()
    for tool in ("prlimit", "unshare") + (("setpriv",) if uid is not None else ()):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"`{tool}` (util-linux) is not installed; the sandbox needs it")
    empty = scratch_dir / "check"
    empty.mkdir(exist_ok=True)
    empty.chmod(0o755)
    spec = WorkerSpec(files_dir=empty, probes="none.py", mode="bwrap", device="cpu",
                      limits=SandboxLimits(), scratch_dir=scratch_dir)
    # the interpreter starts, and finds its user (torch and getpass look it up)
    command = _bwrap_command(spec, uid, ["-I", "-c", "import getpass; assert getpass.getuser() == 'student'"])
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    if result.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap cannot start a sandbox here (exit {result.returncode}): {result.stderr.strip()[-2000:]}\n"
            "Unprivileged user namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1; in Docker run "
            "with --security-opt seccomp=unconfined or a profile allowing clone/unshare of namespaces)."
        )


def sandbox_problem() -> str | None:
    """Why bubblewrap cannot sandbox student code here, or None when it can (a throwaway run of `check_bwrap`)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="autograder-check-") as tmp:
        os.chmod(tmp, 0o711)  # as grade_submission lays out its run folder: the sandbox uid must traverse it
        try:
            check_bwrap(Path(tmp))
        except SandboxUnavailable as exc:
            return str(exc)
    return None
