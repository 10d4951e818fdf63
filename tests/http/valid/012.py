# A body that looks like a request stays a body.
requests = [
    {"target": "/smuggle", "body": b"GET /hidden HTTP/1.1\r\nHost: h\r\n\r\n\r\n"}
]
