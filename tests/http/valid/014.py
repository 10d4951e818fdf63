requests = [{"headers": [("Host", "h"), ("X-Space", "padded value")]}]
