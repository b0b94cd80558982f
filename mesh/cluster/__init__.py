"""Clusters, endpoints, load balancers and upstream connection pools."""

from mesh.cluster.balancer import BALANCERS, LoadBalancer, make_balancer
from mesh.cluster.cluster import UpstreamCluster, hash_value
from mesh.cluster.endpoint import UpstreamEndpoint
from mesh.cluster.pool import PingPongPool, UpstreamConnection, UpstreamError

__all__ = [
    "BALANCERS",
    "LoadBalancer",
    "PingPongPool",
    "UpstreamCluster",
    "UpstreamConnection",
    "UpstreamEndpoint",
    "UpstreamError",
    "hash_value",
    "make_balancer",
]
