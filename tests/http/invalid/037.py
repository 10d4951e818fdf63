# A broken IPv6 literal in a target that has a port separator.
status = 400
