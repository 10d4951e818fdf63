requests = [
    {"method": "POST", "target": "/up", "body": b"hello world", "chunked": True}
]
