"""Read and trace nftables rule sets (kube-proxy's ``nftables`` mode) from their JSON form."""
