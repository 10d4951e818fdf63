# A header line that never ends: the head is bounded all the same.
status = 431
