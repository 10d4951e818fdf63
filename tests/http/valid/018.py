# Names with "_" reach the parser; the environ drops them.
requests = [{"target": "/under", "environ": {"HTTP_X_FORWARDED_FOR": "5.6.7.8"}}]
