"""How validation starts and talks to a kernel: the kernel manager and client nbclient gets.

- The kernel listens on Unix sockets in a private folder (transport ``ipc``), as in the grading
  sandbox: no TCP port is picked, so parallel kernels cannot race for one.
- The kernel is forked by the run's zygote when it has one (see ``aifkit.zygote``), else started
  the usual way; ``on_launch(pid, forked)`` tells the caller which, and the pid.
- Every send on a channel re-arms the asyncio socket. jupyter_client's ``Session.send`` writes
  through a blocking shadow of the asyncio socket; that send can consume the socket's
  edge-triggered wake-up, and a reply arriving meanwhile then waits unseen. nbclient sends on
  the shell channel while it waits for a reply there when an ipywidgets Output widget captures
  output (it forwards the output to the kernel): that stranded a06's execute_reply and hung
  validation until the timeout, with the kernel idle.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Any as AnyTrait
from traitlets import DottedObjectName, Type, Unicode
from traitlets.config import Config


class RearmedChannel(AsyncZMQSocketChannel):
    """A channel whose sends cannot strand a message arriving on the same socket."""

    def send(self, msg: dict[str, Any]) -> None:
        super().send(msg)
        if self.socket is not None:
            self.socket.get(zmq.EVENTS)  # pyzmq then wakes any recv or poll that has data


class ValidationKernelClient(AsyncKernelClient):
    """The async kernel client with re-armed request channels."""

    shell_channel_class = Type(RearmedChannel)
    control_channel_class = Type(RearmedChannel)
    stdin_channel_class = Type(RearmedChannel)


class ForkedKernel:
    """What ``subprocess.Popen`` is to a started kernel, for a kernel the zygote forked."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, conn: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._conn = conn  # the zygote writes {"exit": code} here when the kernel ends
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._conn], [], [], 0)[0]:
            self._read_exit()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._conn], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            self._read_exit()
        assert self.returncode is not None
        return self.returncode

    def _read_exit(self) -> None:
        data = self._conn.recv(4096)
        self.returncode = int(json.loads(data)["exit"]) if data else -signal.SIGKILL
        self._conn.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def send_signal(self, sig: int) -> None:
        """Signal through the pidfd: never a process that has reused the kernel's pid."""
        if self.poll() is None and self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def ask_zygote(
    socket_path: str, cmd: list[str], env: Mapping[str, str], cwd: str, log: str
) -> ForkedKernel | str:
    """A kernel forked by the zygote at ``socket_path``, or why there is none."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(30)
        conn.connect(socket_path)
        # absolute: the zygote runs in another folder (relative --report paths broke forks)
        request = {
            "cmd": cmd,
            "env": dict(env),
            "cwd": os.path.abspath(cwd),
            "log": os.path.abspath(log),
        }
        conn.sendall(json.dumps(request).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                raise OSError("the zygote closed the connection")
            answer += chunk
        conn.settimeout(None)
        reply = json.loads(answer)
    except (OSError, ValueError) as error:
        conn.close()
        return f"no answer from the zygote ({error})"
    if "pid" not in reply:
        conn.close()
        return str(reply.get("refused", reply))
    return ForkedKernel(int(reply["pid"]), conn)


class ZygoteProvisioner(LocalProvisioner):
    """LocalProvisioner that has the kernel forked by the zygote when one runs and agrees."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        km = self.parent
        assert isinstance(km, ValidationKernelManager)
        forked: ForkedKernel | None = None
        if km.zygote_socket:
            env = {**(kwargs.get("env") or os.environ), "JPY_PARENT_PID": str(os.getpid())}
            cwd = str(kwargs.get("cwd") or os.getcwd())
            answer = ask_zygote(km.zygote_socket, cmd, env, cwd, km.kernel_log or os.devnull)
            if isinstance(answer, str):
                km.refusal = answer
            else:
                forked = answer
        if forked is None:
            connection = await super().launch_kernel(cmd, **kwargs)
        else:
            self.process = forked  # type: ignore[assignment]  # Popen's interface, as used
            self.pid = self.pgid = forked.pid  # the child started its own session
            self.cwd = cwd
            connection = self.connection_info
        if km.on_launch is not None:
            km.on_launch(self.pid, forked is not None)
        return connection


class ValidationKernelManager(AsyncKernelManager):
    """The kernel manager validation hands to nbclient (configured by ``kernel_config``)."""

    client_class = DottedObjectName("aifkit.notebooks.kernel.ValidationKernelClient")
    client_factory = Type(ValidationKernelClient, klass=AsyncKernelClient)
    zygote_socket = Unicode("", config=True, help="Unix socket of the run's zygote, '' if none.")
    kernel_log = Unicode("", config=True, help="Where a forked kernel's stdout and stderr go.")
    on_launch = AnyTrait(None, config=True, help="Called as on_launch(pid, forked) at start.")
    refusal = ""  # why the zygote did not fork this kernel, when it did not

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = ZygoteProvisioner(
                kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
            )
        return await super()._async_pre_start_kernel(**kw)


def kernel_config(
    runtime: Path,
    *,
    zygote_socket: str | None,
    log: Path,
    on_launch: Callable[[int, bool], None],
) -> Config:
    """Configuration for one notebook's kernel: its Unix sockets live in ``runtime``."""
    return Config(
        {
            "ValidationKernelManager": {
                "transport": "ipc",
                "connection_file": str(runtime / "kernel.json"),  # sockets: kernel-ipc-1..5
                "zygote_socket": zygote_socket or "",
                "kernel_log": str(log),
                "on_launch": on_launch,
            }
        }
    )
