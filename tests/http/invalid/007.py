status = 414
