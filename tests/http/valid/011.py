requests = [{"headers": [("Host", "h"), ("X-Dup", "a"), ("X-Dup", "b")]}]
