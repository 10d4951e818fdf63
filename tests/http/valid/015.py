requests = [{"method": "OPTIONS", "target": "*"}]
