# chunked is not the final coding: the length cannot be known (RFC 9112, 6.3).
status = 400
