requests = [{"version": "1.0", "keep_alive": False}]
