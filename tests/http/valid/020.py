# An IPv6 literal, an upper-case scheme, no port.
requests = [{"path": "/x", "environ": {"HTTP_HOST": "[::1]"}}]
