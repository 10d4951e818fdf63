# An empty Host is allowed by its grammar (RFC 9110, 7.2).
requests = [{"path": "/x"}]
