# RFC 9112, 3.2.2: the target's authority wins over the Host header.
requests = [
    {
        "target": "http://example.com:8080/abs?q=1",
        "path": "/abs",
        "query": "q=1",
        "environ": {"HTTP_HOST": "example.com:8080"},
    }
]
