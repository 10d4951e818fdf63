# A TLS ClientHello sent to a plain HTTP port.
status = 400
