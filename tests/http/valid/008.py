requests = [{"keep_alive": False}]
