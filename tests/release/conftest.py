from tests.fakeapi.fixtures import fake_api, fake_kubeconfig

__all__ = ["fake_api", "fake_kubeconfig"]
