# A port and no host; the request before it is still answered.
status = 400
requests_before = 1
