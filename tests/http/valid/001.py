requests = [
    {
        "method": "GET",
        "target": "/",
        "version": "1.1",
        "headers": [("Host", "example.com")],
        "body": b"",
        "keep_alive": True,
    }
]
