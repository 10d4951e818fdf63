# User information in the target (RFC 9110, 4.2.4).
status = 400
