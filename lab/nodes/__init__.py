"""Lab nodes: systemd node containers (podman) that stand in for bare-metal machines.

The main job and the end-to-end scenario use them as the inventory's hosts: ``cp1``
(control_plane, istio_controller), ``w1``/``w2`` (workers) and ``ws1`` (workstations).
"""
