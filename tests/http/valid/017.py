requests = [{"target": "/empty", "body": b""}, {"target": "/next"}]
