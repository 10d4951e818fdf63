requests = [{"method": "POST", "target": "/form", "body": b"hello world"}]
