# RFC 9112, 3.2: an HTTP/1.1 request without Host is a 400.
status = 400
