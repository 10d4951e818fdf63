# An absolute-form target with an empty host (RFC 9110, 4.2.1).
status = 400
