"""A fake kube-apiserver for tests: see server.FakeKubeAPI and fixtures."""
