"""The audit log, as kube-apiserver writes it: audit.k8s.io/v1 Events for each request
stage, at the level an audit Policy gives, to a file (or stdout) and to a webhook."""
