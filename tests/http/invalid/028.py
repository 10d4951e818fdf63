# RFC 9112 3.2: more than one Host header field is a 400.
status = 400
