requests = [
    {"target": "/1", "keep_alive": True},
    {"target": "/2", "body": b"abc"},
    {"target": "/3", "keep_alive": False},
]
