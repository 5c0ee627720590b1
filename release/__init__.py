"""Release tooling, not part of the product: the container image and the deploy/ base.

`release.image` writes `dist/kubepulse-VERSION.oci.tar`, an OCI image layout in a tar
archive, byte for byte the same from the same inputs; `release.deploy` writes deploy/
from `kubepulse manifests`.
"""
