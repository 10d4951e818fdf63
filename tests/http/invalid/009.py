status = 431
