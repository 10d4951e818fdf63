# A minor version that is not a digit: 400, not 505.
status = 400
