requests = [{"target": "/ws", "upgrade": True, "keep_alive": False}]
