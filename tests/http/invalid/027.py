# A request target that never ends.
status = 414
