# A chunk size that overflows.
status = 400
