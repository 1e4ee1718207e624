"""A test double of the Kubernetes API server (see README.md): real HTTP on 127.0.0.1, the
official client unchanged, simulated Deployment and Job controllers stepped by tests."""
