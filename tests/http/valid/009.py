requests = [{"target": "http://example.com/abs?q=1", "path": "/abs", "query": "q=1"}]
