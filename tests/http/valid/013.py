requests = [{"target": "/c", "body": b"GET /x HTTP/1.1\r\n\r\n"}]
