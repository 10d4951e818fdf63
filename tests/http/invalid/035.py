# RFC 9112, 3.2: a Host field with an invalid value is a 400.
status = 400
