requests = [
    {
        "method": "GET",
        "target": "/a/b%20c?x=1&y=%41",
        "headers": [("Host", "h"), ("User-Agent", "test/1.0"), ("Accept", "*/*")],
        "body": b"",
    }
]
