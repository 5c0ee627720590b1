"""kubepulse: resource monitoring for Kubernetes."""

__version__ = "0.1.0"
