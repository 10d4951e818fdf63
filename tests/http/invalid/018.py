# The request before the bad one is still answered.
status = 400
requests_before = 1
