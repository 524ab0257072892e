"""Container images for the lab's nodes, built locally (no registry is reachable) and imported
into each node's containerd under the exact names the manifests use."""
