# Not a version at all (RFC 9112: DIGIT "." DIGIT): 400, not 505.
status = 400
