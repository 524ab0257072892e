"""Connection to the lab's node containers: one short round trip per task, as SSH with
pipelining and a persistent control connection gives on bare-metal nodes.

containers.podman.podman runs a module in four ``podman exec`` calls (make a temporary
directory, chmod, run, remove), since it never attaches stdin and so cannot pipeline, and each
``podman exec`` costs about 0.1 s of runtime bookkeeping. A lab run of site.yml is several
hundred module runs, so the transport, not the collection, would dominate its figures. This
plugin enters the namespaces of the node container's init process with ``nsenter`` (about
10 ms), runs the command with the container's environment, and sends pipelined modules on
stdin. Files are still copied the way containers.podman.podman copies them.

The lab nodes are privileged rootful containers, so entering their namespaces as root gives
the same rights ``podman exec`` gives; processes left behind by a task belong to the node's
PID namespace and end with the node.
"""

DOCUMENTATION = r"""
name: lab_podman
short_description: Run tasks in the lab's podman node containers through nsenter, with pipelining
description:
  - The containers.podman.podman connection, with commands run by C(nsenter) in the namespaces
    of the container's init process and stdin attached, so that Ansible pipelining works.
    Used only by the lab inventory; needs root on the controller.
options:
  remote_addr:
    description: Name or ID of the container.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
      - name: ansible_podman_host
  remote_user:
    description: User to run commands as inside the container (C(podman exec) is used then).
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
  podman_extra_args:
    description: Extra arguments for every podman command.
    default: ''
    ini:
      - section: defaults
        key: podman_extra_args
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
  podman_executable:
    description: The podman executable.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  pipelining:
    description: Send modules on stdin instead of copying them into the container.
    type: boolean
    default: true
    vars:
      - name: ansible_pipelining
"""

import json
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

# Namespaces of the container's init to enter: mount, UTS, IPC, network, PID and cgroup; the
# root and working directories are the init's too.
NSENTER_ARGS = ["-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w"]


class Connection(PodmanConnection):
    transport = "lab_podman"
    has_pipelining = True

    def _connect(self):
        super()._connect()
        rc, out, err = self._podman("inspect", ["--format", "{{.State.Pid}} {{json .Config.Env}}"])
        pid, _, env = to_native(out).strip().partition(" ")
        if rc != 0 or not pid.isdigit() or pid == "0":
            raise AnsibleConnectionFailure(
                f"lab_podman: container {self._container_id} is not running: {to_native(err).strip()}"
            )
        self._init_pid = pid
        self._env = json.loads(env or "[]")
        return self

    def exec_command(self, cmd, in_data=None, sudoable=False):
        if not self._connected:
            self._connect()
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        argv = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        if self.user:
            attach_stdin = ["-i"] if in_data is not None else []
            return self._podman(["exec", *attach_stdin, "--user", self.user], argv, in_data)
        local_cmd = ["nsenter", "-t", self._init_pid, *NSENTER_ARGS, "--", "env", "-i", *self._env, *argv]
        proc = subprocess.Popen(
            [to_bytes(arg, errors="surrogate_or_strict") for arg in local_cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = proc.communicate(input=in_data)
        return proc.returncode, stdout, stderr
