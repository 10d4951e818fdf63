# Repeated Content-Length: refused even when equal.
status = 400
