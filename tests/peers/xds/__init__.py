"""A test xDS control plane (ads_server.py)."""
